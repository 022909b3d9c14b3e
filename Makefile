# Hydra. `make run` serves the site on the embedded default; `make test` runs the whole suite
# against real PostgreSQL, Redis and headless Chromium. Both install whatever is missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/hydra
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
APT_PACKAGES := chromium chromium-driver ffmpeg nginx

export PYTHONUNBUFFERED := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test install install-python install-node install-browser assets models services lint format bench bench-quick bench-site-day bench-quality violence-head clean

run: install assets
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py build_models
	$(PY) manage.py seed_demo
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) hydra_site.asgi:application

test: install install-browser assets services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) HYDRA_TASKS_EAGER=1 $(PY) manage.py migrate --noinput
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) HYDRA_TASKS_EAGER=1 $(PY) manage.py build_models
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) HYDRA_TASKS_EAGER=1 \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

install: install-python install-node

install-python: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c requirements.lock
	touch $@

install-node: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium (Playwright's own browser download cannot work here), ffmpeg, and nginx (the production
# media path, which `make test` runs in front of daphne: tests/videos/test_nginx.py).
install-browser:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The browser bundle: TF.js and Hydra's client code, from npm, no CDN.
assets: install-node static/js/build/.built
static/js/build/.built: $(wildcard static/js/src/*.js) static/js/build.mjs package-lock.json
	node static/js/build.mjs
	touch $@

models: install
	$(PY) manage.py build_models

# Start PostgreSQL and Redis if they are not already running (CI machines start them; this is a fallback).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || (pg_ctlcluster --skip-systemctl-redirect 15 main start 2>/dev/null || service postgresql start) 
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --save "" --appendonly no
	@for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	@psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='hydra'" | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE hydra"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install install-browser assets services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m bench.run --full

bench-quick: install install-browser assets services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m bench.run --quick

# The site day, scaled down and driven through the real stack against the model (about 3 minutes; part of
# `make bench`). Prices the model with the component costs of the last recorded run (docs/bench-results.json).
bench-site-day: install services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m bench.site_day_replay

# Detection quality on real footage (fight-surveillance, Aktı et al. IPTA 2019): violence 5-fold CV and nudity
# false flags per stage. Last line is one JSON object. First run decodes the clips (minutes), then cached.
DATASET ?= ../shared/datasets/fight-surveillance
bench-quality: install assets services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) manage.py migrate --noinput -v0
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) manage.py build_models
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m bench.quality --dataset $(DATASET)

# Reproduce the shipped violence head (weights, report and ROC plot under inference/ml/weights/violence/).
violence-head: install
	mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py build_models
	$(PY) manage.py train_head violence --from-folder $(DATASET) --ship --no-activate

clean:
	rm -rf static/js/build var/staticfiles
