"""Words too common to say what a memory is about, in the site's languages (English, German,
Spanish), dropped from the recent messages before retrieval chooses its ``MAX_WORDS``
words (``memories.fulltext``): otherwise "because", "through" or "nosotros" take the slots of
the words that matter, and on SQLite (FTS5 has no stop words) a word such as "the" would
match, and rank, every memory. Only words of three letters or more: shorter ones are dropped
anyway. PostgreSQL's own configurations drop their stop words as well; this list is for
choosing the words, not a replacement for them.
"""

from __future__ import annotations

_ENGLISH = """
about above after again against all also and any are aren't because been before being below
between both but can cannot could did does doing don down during each few for from further
had has have having her here hers herself him himself his how into its itself just let more
most much must myself nor not now off once only other ought our ours ourselves out over own
same she should some such than that the their theirs them themselves then there these they
this those through too under until very was were what when where which while who whom why
will with would yes yet you your yours yourself yourselves really well okay yeah
got going thing things told said says
"""
_GERMAN = """
aber alle allem allen aller alles als also ander andere anderem anderen anderer anderes auch
auf aus bei bin bis bist da damit dann das dass dein deine deinem deinen deiner dem den denn
der des dich die dies diese diesem diesen dieser dieses dir doch dort durch ein eine einem
einen einer eines einig einige einigem einigen einiger einiges einmal etwas euch euer eure
für gegen gewesen hab habe haben hat hatte hatten hier hin hinter ich ihm ihn ihnen ihr ihre
ihrem ihren ihrer ihres im in indem ins ist jede jedem jeden jeder jedes jene jenem jenen
jener jenes jetzt kann kein keine keinem keinen keiner keines können könnte machen man
manche manchem manchen mancher manches mein meine meinem meinen meiner mich mir mit muss
musste nach nicht nichts noch nun nur oder ohne sehr sein seine seinem seinen seiner seines
selbst sich sie sind so solche solchem solchen solcher solches soll sollte sondern sonst
über um und uns unser unsere unter viel vom von vor während war waren warst was weg weil
weiter welche welchem welchen welcher welches wenn werde werden wie wieder will wir wird
wirst wo wollen wollte würde würden zu zum zur zwar zwischen
"""
_SPANISH = """
algo algunas algunos ante antes como con contra cual cuando del desde donde durante ella
ellas ellos entre era erais eran eras eres esa esas ese eso esos esta estaba estaban estado
estamos estar estas este esto estos estoy fue fueron fui había habían han has hasta hay las
les los más mis mucho muchos muy nada nos nosotras nosotros nuestra nuestras nuestro
nuestros otra otras otro otros para pero poco por porque que quien quienes qué sea sean ser
sido sin sobre son soy sus suya suyas suyo suyos también tanto tener tengo tiene tienen
todo todos tus una uno unos usted ustedes vosotras vosotros yo
"""

STOP_WORDS = frozenset(
    word for text in (_ENGLISH, _GERMAN, _SPANISH) for word in text.split() if len(word) >= 3
)
