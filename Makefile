# Noise2Noise reproduction: `make all` runs the study, `make test` the tests. See README.md.
SHELL := /bin/bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
PROFILE ?= cpu
# the profiles `make all` runs (n2n_core/config.py PROFILES, less `pretrained`, which `make pretrained` uses)
RUN_PROFILES := smoke cpu paper
$(if $(filter $(PROFILE),$(RUN_PROFILES)),,$(error PROFILE=$(PROFILE) is not a profile of make all; choose one of: $(RUN_PROFILES)))
# a relative data or output folder is relative to where make runs, not to notebooks/, where papermill
# runs each notebook (N2N_DATA_DIR=../shared/datasets once made them look for notebooks/../shared);
# `override`: given on make's command line (make all N2N_DATA_DIR=...) it is made absolute too
abs = $(if $(filter /% ~%,$(1)),$(1),$(CURDIR)/$(1))
ifdef N2N_DATA_DIR
override N2N_DATA_DIR := $(call abs,$(N2N_DATA_DIR))
export N2N_DATA_DIR
endif
ifdef N2N_OUTPUT_DIR
override N2N_OUTPUT_DIR := $(call abs,$(N2N_OUTPUT_DIR))
export N2N_OUTPUT_DIR
endif
# BM3D=1 installs the optional bm3d package (the classical baseline of Table 1; its licence allows
# non-commercial use only); BM3D=0 leaves it out and the table says "not installed"
BM3D ?= 1
BM3D_STAMP := $(if $(filter 1,$(BM3D)),$(VENV)/.bm3d,)
# the cpu profile writes reports/ and checkpoints/; other profiles a subfolder named after them
SUB := $(if $(filter cpu,$(PROFILE)),,/$(PROFILE))
REPORTS := reports$(SUB)
CHECKPOINTS := checkpoints$(SUB)
PACKAGE := $(wildcard n2n_core/*.py n2n_core/*/*.py n2n_core/*/*/*.py)
NOTEBOOKS := 00_quickstart 01_data_augmentation 02_noise2noise_resnet 03_noise2noise_unet 04_discriminative_unet 05_paper_table \
             06_your_own_data 07_losses_text_impulse 08_brown_noise 09_single_capture 10_capture_budget 11_real_noise
EXECUTED := $(NOTEBOOKS:%=$(REPORTS)/%.ipynb)

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  make /'
	@echo "  variables: PROFILE=smoke|cpu|paper (default cpu), N2N_DATA_DIR=folder with train_pool/ and kodak/,"
	@echo "             BM3D=0 to leave out the optional bm3d package (non-commercial licence)"

# the notebooks' kernel (their kernelspec names it), registered inside .venv: nothing outside the repo changes
KERNEL := n2n
KERNEL_SPEC := $(VENV)/share/jupyter/kernels/$(KERNEL)/kernel.json

## env: create the Python environment in .venv (done by every target that needs it), its Jupyter kernel, and the git filter that strips notebook outputs
env: $(ENV_STAMP) $(KERNEL_SPEC)
	@$(GIT_FILTER)

$(KERNEL_SPEC): | $(ENV_STAMP)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Noise2Noise (.venv)" >/dev/null
# outputs and execution counts stripped from notebooks on commit (.gitattributes names the filter; git
# runs only commands from its own config, so each clone installs it: .git/config, in a worktree the
# repository's); --keep-id keeps the cells' ids, which the notebooks are committed with
GIT_FILTER := ! git rev-parse --git-dir >/dev/null 2>&1 || { \
  git config filter.nbstripout.clean '"$(abspath $(PY))" -m nbstripout --keep-id' && \
  git config filter.nbstripout.smudge cat && \
  git config diff.ipynb.textconv '"$(abspath $(PY))" -m nbstripout --keep-id -t'; }

$(ENV_STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e . \
	  || $(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	@$(GIT_FILTER)
	@touch $@

$(VENV)/.bm3d: $(ENV_STAMP)
	@echo "Installing the optional bm3d package (Tampere University licence: non-commercial use only; BM3D=0 skips it)"
	$(PY) -m pip install --disable-pip-version-check -q "bm3d==4.0.3"
	@touch $@

## all: run the twelve notebooks in order (papermill) into reports/, writing checkpoints/*.pth
all: $(EXECUTED)
	@$(PY) -m n2n_core summary --profile $(PROFILE)
	@echo "Done: executed notebooks and figures in $(REPORTS)/, checkpoints in $(CHECKPOINTS)/, numbers in $(REPORTS)/results.json, Table 1 in $(REPORTS)/table1.md, the claims in $(REPORTS)/claims.md"

# The plan, before the first notebook that is out of date runs: the path this machine takes and the
# projected time of the notebooks to execute (timed steps of their training settings; `n2n plan`),
# into a plan file that each notebook's recipe reads for its progress line. Which notebooks: those
# that `make -n all` would execute (PLAN=0 there: no plan of the plan). $$PPID in a recipe is this
# make's process id, so a plan file of another make gives no progress line. (MAKE_COMMAND, not MAKE:
# a line naming $(MAKE) runs even under `make -n`.)
PLAN ?= 1
PLAN_FILE := $(REPORTS)/.plan.json
ifeq ($(PLAN)$(filter all,$(MAKECMDGOALS)),1all)
$(EXECUTED): | plan-start
endif
plan-start: | $(ENV_STAMP) $(KERNEL_SPEC)
	@$(PY) -m n2n_core plan --profile $(PROFILE) --write $(PLAN_FILE) --run $$PPID \
	  --papermill "$(VENV)/bin/papermill -k $(KERNEL)" \
	  $$($(MAKE_COMMAND) --no-print-directory -n all PLAN=0 2>/dev/null | sed -n 's|.*papermill .* notebooks/\([0-9A-Za-z_]*\)\.ipynb .*|\1|p')

# What each notebook uses: the package modules it imports (their closure, lazy imports and the command
# line that yourdata.cli starts included) and the shipped weights it names, one rule a notebook, so that
# editing a module re-executes only the notebooks that run it. tools/notebook_deps.py reads the
# notebooks with the system python (no .venv needed) and writes the rules for every profile at once;
# make rewrites them before anything else when a notebook or a module changes, or one is added or
# removed (the folders' times), and includes them only for goals that execute notebooks.
NOTEBOOK_DEPS := reports/.notebook-deps.mk
$(NOTEBOOK_DEPS): tools/notebook_deps.py $(wildcard notebooks/*.ipynb) $(PACKAGE) notebooks $(sort $(dir $(PACKAGE)))
	$(PYTHON) tools/notebook_deps.py --out $@
ifneq ($(filter-out help env test test-ui pretrained blindcheck bench lab clean distclean plan-start,$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
include $(NOTEBOOK_DEPS)
endif

# The notebooks run in order when several are to run; order-only (after the |), so that a notebook
# is not re-executed only because the one before it was.
$(REPORTS)/01_data_augmentation.ipynb: | $(REPORTS)/00_quickstart.ipynb
$(REPORTS)/02_noise2noise_resnet.ipynb: | $(REPORTS)/01_data_augmentation.ipynb
$(REPORTS)/03_noise2noise_unet.ipynb: | $(REPORTS)/02_noise2noise_resnet.ipynb
$(REPORTS)/04_discriminative_unet.ipynb: | $(REPORTS)/03_noise2noise_unet.ipynb
$(REPORTS)/05_paper_table.ipynb: | $(REPORTS)/04_discriminative_unet.ipynb
$(REPORTS)/06_your_own_data.ipynb: | $(REPORTS)/05_paper_table.ipynb
$(REPORTS)/07_losses_text_impulse.ipynb: | $(REPORTS)/06_your_own_data.ipynb
$(REPORTS)/08_brown_noise.ipynb: | $(REPORTS)/07_losses_text_impulse.ipynb
$(REPORTS)/09_single_capture.ipynb: | $(REPORTS)/08_brown_noise.ipynb
$(REPORTS)/10_capture_budget.ipynb: | $(REPORTS)/09_single_capture.ipynb
$(REPORTS)/11_real_noise.ipynb: | $(REPORTS)/10_capture_budget.ipynb

# Files one notebook writes and another reads, where a change must re-execute the reader:
# - the patch sets: notebook 01 cuts them (data/patches_<profile>_seed0.pt, seed 0 as make runs the
#   notebooks) and every notebook that trains on them reads them. Their readers depend on the file,
#   not on 01's executed copy: 01 reuses the file when it is there, so re-executing 01 (a figure
#   changed) leaves it as it was, while a file cut again (rebuild=True, or deleted and cut by the rule
#   below) re-executes them. Notebook 06 trains on its own pairs, not on these.
PATCHES := $(or $(N2N_OUTPUT_DIR),$(CURDIR))/data/patches_$(PROFILE)_seed0.pt
TRAINING := 02_noise2noise_resnet 03_noise2noise_unet 04_discriminative_unet 05_paper_table \
            07_losses_text_impulse 08_brown_noise 09_single_capture 10_capture_budget
$(TRAINING:%=$(REPORTS)/%.ipynb): $(PATCHES)
$(PATCHES): | $(REPORTS)/01_data_augmentation.ipynb ;
# missing (a fresh clone, or deleted): notebook 01 is executed again, which cuts them
$(REPORTS)/01_data_augmentation.ipynb: $(if $(wildcard $(PATCHES)),,patches-missing)
patches-missing: ;
# - results.json: notebook 04 checks its clean-target U-Net against the noisy-target one's PSNR that
#   notebook 03 records there, so a re-executed 03 re-executes 04.
$(REPORTS)/04_discriminative_unet.ipynb: $(REPORTS)/03_noise2noise_unet.ipynb
# - results.json: the claims table has rows from Table 1's cells, which notebook 05 records; notebooks
#   07 to 11 each rewrite it from everything recorded, so a re-executed 05 re-executes the last of them
#   (a cheap run: its trained models are reloaded) to bring the table up to date.
$(REPORTS)/11_real_noise.ipynb: $(REPORTS)/05_paper_table.ipynb
# Not declared: notebooks 04, 05 and 09 reload the finished U-Nets that earlier notebooks trained (a
# checkpoint changes only with the code that trains it, which they depend on themselves), and the
# summary at the end of `make all` reads results.json after every notebook, on every run.

# papermill waits forever on an ipywidgets slider (nteract/papermill#723): headless, the quickstart has none
$(REPORTS)/00_quickstart.ipynb: PARAMS = -p slider False
# prerequisites beyond the notebook itself: the rules above and the generated ones
$(REPORTS)/%.ipynb: notebooks/%.ipynb | $(ENV_STAMP) $(BM3D_STAMP) $(KERNEL_SPEC)
	@mkdir -p $(REPORTS)
	@rm -f $(REPORTS)/$*.failed.ipynb
	@$(PY) -m n2n_core.studies.plan $(PLAN_FILE) $$PPID $*
	$(VENV)/bin/papermill --cwd notebooks -k $(KERNEL) -p profile $(PROFILE) $(PARAMS) $< $(REPORTS)/$*.failed.ipynb
	@mv $(REPORTS)/$*.failed.ipynb $@

## test: unit tests and every notebook under nbval in the smoke profile
test: $(ENV_STAMP) $(BM3D_STAMP) $(KERNEL_SPEC)
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q --nbval-lax notebooks

## test-ui: notebooks 00 and 01 in JupyterLab in headless Chromium (Playwright; the chromium on PATH or N2N_CHROMIUM; N2N_UI_SCREENSHOT=file.png saves notebook 00)
test-ui: $(ENV_STAMP) $(KERNEL_SPEC)
	N2N_UI=1 $(PY) -m pytest -q -rs tests/test_ui.py

## pretrained: train the shipped weights, resumable: NOISE=gaussian|poisson, GREY=1 (grey weights), MINUTES=N per chunk, POOL="train_pool imagenet_sample" (pool folders; data: N2N_DATA_DIR)
NOISE ?= gaussian
GREY ?=
MINUTES ?=
POOL ?= train_pool
pretrained: $(ENV_STAMP)
	$(PY) -m n2n_core pretrained --noise $(NOISE) $(if $(GREY),--grey,) $(if $(MINUTES),--max-minutes $(MINUTES),) --pool $(POOL)

## blindcheck: blind against per-level U-Nets at one budget, STEPS=N each, resumable: MINUTES=N per call (data: N2N_DATA_DIR; reports/blindcheck.md)
STEPS ?= 5000
blindcheck: $(ENV_STAMP)
	$(PY) -m n2n_core.studies.blindcheck --steps $(STEPS) $(if $(MINUTES),--max-minutes $(MINUTES),)

## bench: training and inference throughput per setting, against plain float32 (reports/bench.json)
bench: $(ENV_STAMP)
	$(PY) -m n2n_core.studies.bench

## lab: JupyterLab on the repository, on 127.0.0.1 (PORT=N, TOKEN=... else a random one, printed)
PORT ?= 8888
TOKEN ?=
lab: $(ENV_STAMP) $(KERNEL_SPEC)
	$(VENV)/bin/jupyter lab --notebook-dir=. --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) \
	  $(if $(TOKEN),--IdentityProvider.token=$(TOKEN),) $(if $(filter 0,$(shell id -u)),--allow-root,) \
	  --MappingKernelManager.default_kernel_name=$(KERNEL)

## clean: delete reports/, make all's checkpoints, patch sets and notebook 06's pairs (keeps checkpoints/pretrained/, your own `n2n train` models checkpoints/own_*, downloads, .venv)
clean:
	rm -rf reports data/patches_*.pt data/own_data data/realnoise_standin
	[ ! -d checkpoints ] || find checkpoints -mindepth 1 -maxdepth 1 ! -name pretrained ! -name README.md ! -name 'own_*' -exec rm -rf {} +

## distclean: clean, and delete downloads and the environment
distclean: clean
	rm -rf data/downloads $(VENV)

.PHONY: help env all test test-ui pretrained blindcheck bench lab clean distclean patches-missing plan-start
