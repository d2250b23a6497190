# fid: `make demo` runs the pipeline offline; `make test` sets up .venv and runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fid-installed
DEMO_DIR ?= demo-output
# demo size knobs: DEMO_SIZE=demo|small|tiny (the sample source), DEMO_EPOCHS (small_cnn epochs)
DEMO_SIZE ?= demo
DEMO_EPOCHS ?= 40
DEMO_IMAGE_SIZE ?= 64

.PHONY: test demo demo-run demo-small bench clean-demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,train]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/pytest -q

# The whole pipeline offline, as a user would type it: the sample source in the background (stopped
# on exit), then crawl, dedup, review (rules + scripted decisions over the review API), export,
# train, evaluate, explain, embed, suspects and the report.
define DEMO_SCRIPT
set -euo pipefail
VENV_BIN="$$(cd "$(VENV)/bin" && pwd)"
export PATH="$$VENV_BIN:$$PATH"
OUT="$$(mkdir -p "$(DEMO_DIR)" && cd "$(DEMO_DIR)" && pwd)"
rm -rf "$$OUT/project" "$$OUT/report" "$$OUT/logs" "$$OUT/sample-urls.txt" "$$OUT/answers.csv"
mkdir -p "$$OUT/logs"
SAMPLE=; REVIEW=
cleanup() { for p in $$REVIEW $$SAMPLE; do kill "$$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$$*"; }
wait_for() { for _ in $$(seq 300); do [ -s "$$1" ] && return 0; kill -0 "$$2" 2>/dev/null || break; sleep 0.2; done
             echo "$$3 did not start; see $$4" >&2; cat "$$4" >&2; exit 1; }
T0=$$(date +%s)
step "fid init: a project folder with its catalog"
fid init "$$OUT/project" --contact demo@example.org
cd "$$OUT/project"
step "fid sample-source serve: the offline sample source (Bing and GBIF on loopback)"
fid sample-source serve --size "$(DEMO_SIZE)" --urls-file "$$OUT/sample-urls.txt" --answers "$$OUT/answers.csv" > "$$OUT/logs/sample-source.log" 2>&1 &
SAMPLE=$$!
wait_for "$$OUT/sample-urls.txt" "$$SAMPLE" "the sample source" "$$OUT/logs/sample-source.log"
cat "$$OUT/sample-urls.txt"
step "fid crawl: six clades on Bing and GBIF"
fid crawl --engines bing,gbif $$(cat "$$OUT/sample-urls.txt") --clade Ammonoid --clade Trilobite --clade "Shark teeth" --clade Pteridophyte --clade Belemnite --clade Starfish
step "fid dedup: near-duplicate groups and label conflicts"
fid dedup
step "fid review auto-accept: the collection's images are trusted"
fid review auto-accept --source gbif | tail -n 2
step "scripted review over the review server's HTTP API: rejects with reasons, relabels, crops"
RPORT=$$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fid review serve --port "$$RPORT" > "$$OUT/logs/review-server.log" 2>&1 &
REVIEW=$$!
python - "$$RPORT" "$$REVIEW" <<'PYEOF'
import os, sys, time, requests
port, pid = sys.argv[1], int(sys.argv[2])
for _ in range(300):
    try:
        requests.get(f"http://127.0.0.1:{port}/api/session", timeout=2); sys.exit(0)
    except requests.RequestException:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
sys.exit("the review server did not start; see logs/review-server.log")
PYEOF
python -m curation.review.client --server "http://127.0.0.1:$$RPORT" --reviewer demo-curator "$$OUT/answers.csv"
kill "$$REVIEW"; wait "$$REVIEW" 2>/dev/null || true; REVIEW=
step "fid export: a leak-free stratified split"
fid export demo --include-unreviewed --ratios 0.7,0.15,0.15
step "fid train --arch small_cnn ($(DEMO_EPOCHS) epochs at $(DEMO_IMAGE_SIZE) px)"
fid train --export demo --out runs/demo --arch small_cnn --weights none --epochs "$(DEMO_EPOCHS)" --image-size "$(DEMO_IMAGE_SIZE)" --batch-size 32 --lr 3e-3 --decay-rate 0.94 --augment flip,rotate > "$$OUT/logs/train.log" 2>&1 || { tail -n 40 "$$OUT/logs/train.log"; exit 1; }
tail -n 20 "$$OUT/logs/train.log"
step "fid evaluate"
fid evaluate --model runs/demo 2>&1 | grep -v -e '^WARNING: All log' -e '^I0000'
step "fid explain: Grad-CAM of a few test images"
mkdir -p runs/demo/explain
for clade in Ammonoid Trilobite Starfish; do
  imgs=(exports/demo/test/"$$clade"/*); img="$${imgs[0]}"
  fid explain --model runs/demo "$$img" --out "runs/demo/explain/$$clade.png" 2>&1 | grep -v -e '^WARNING: All log' -e '^I0000'
done
step "fid embed"
fid embed --model runs/demo --out runs/demo/embedding.png 2>&1 | grep -v -e '^WARNING: All log' -e '^I0000' -e umap -e 'warn('
step "fid suspects"
fid suspects --model runs/demo --limit 50 2>&1 | grep -v -e '^WARNING: All log' -e '^I0000' | tail -n 8
step "fid report"
fid report --out "$$OUT/report"
cleanup; SAMPLE=
python - "$$OUT/report/report.json" "$$(( $$(date +%s) - T0 ))" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); ev = r["evaluation"]
print(f"\nfid demo done in {sys.argv[2]} s")
print(f"  test top-1 {ev['top1']:.3f}, top-3 {ev['top3']:.3f} on {ev['n']} test images")
print(f"  report: {sys.argv[1].rsplit('/', 1)[0]}/index.html")
PYEOF
echo "  review page on the same catalog: cd $$OUT/project && fid review serve   (then open http://127.0.0.1:8000/)"
endef
export DEMO_SCRIPT

demo: $(STAMP)
	@$(MAKE) --no-print-directory demo-run

# the demo without the install step (the test runs it at DEMO_SIZE=small)
demo-run:
	@bash -c "$$DEMO_SCRIPT"

demo-small: $(STAMP)
	@$(MAKE) --no-print-directory demo-run DEMO_SIZE=small DEMO_EPOCHS=4

bench: $(STAMP)
	$(PY) bench/import_urls.py

clean-demo:
	rm -rf $(DEMO_DIR)
