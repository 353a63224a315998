"""English dates as the site has always shown them (day before month, ISO for short dates).

Django's own English formats are American ("Feb. 2, 2026"); German and Spanish use
Django's formats unchanged. Templates name a format ("DATE_FORMAT"), never a pattern.
"""

DATE_FORMAT = "j F Y"
MONTH_DAY_FORMAT = "j F"
YEAR_MONTH_FORMAT = "F Y"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
DATETIME_FORMAT = "j F Y, H:i"
