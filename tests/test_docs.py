"""Every command and snippet of the documentation runs as written.

The pages are README.md, docs/*.md and bench/README.md. Every fenced block says its
language; ```bash, ```python and ```toml blocks run, the others (```text: output, formulas,
signatures) are shown only. A block runs as a reader would run it: the blocks of a page in
page order, in one fresh folder per page that holds links to the checkout's ``examples/``,
``bench/`` and ``tests/`` (so "from the repository root" holds), with this lesde first on
``PYTHONPATH`` and this Python's ``lesde`` and ``python`` first on ``PATH``. Pages run side
by side, one per CPU, so the docs cost the suite about the time of the longest page:

- bash: ``bash -e -o pipefail`` runs the block; every command must succeed;
- python: the block is saved as a file and run by this Python;
- toml: the block is saved as a file and checked by ``lesde validate``.

A block that cannot run here is marked in the markdown, on the line right before its fence,
with the reason, which the test prints when it skips it:

    <!-- test: skip (needs a GPU) -->         never run by this test (CI runs the pip lines)
    <!-- test: slow (takes minutes) -->       run only with LESDE_TEST_SLOW=1
    <!-- test: file (sweep_mpi.py) -->        saved under that name for a later block to run

Everything else must run, quickly: shrink an example (fewer steps, smaller N) rather than
mark it. The last test keeps docstrings, configs and docs from pointing to a MODEL.md that
is not in the repository (the model is docs/model.md).
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import lesde

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "README.md").is_file() or not (ROOT / "docs").is_dir():
    pytest.skip(
        "the documentation is not here (the tests of an installed wheel run without it)",
        allow_module_level=True,
    )
PACKAGE_PARENT = Path(lesde.__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
RUN = ("bash", "python", "toml")
SHOWN = ("text",)
MARKS = ("skip", "slow", "file")
# Pages another change owns, whose blocks are not marked yet: their blocks are skipped with
# this reason until the page has its first marker. An entry for a page that has markers
# fails test_every_block_is_runnable_or_marked: then delete it.
UNMARKED_PAGES: dict[str, str] = {}
BLOCK_TIMEOUT = 300  # seconds; a block that needs more is slow, and marked so
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*test:\s*(?P<kind>\w+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mark: str | None = None  # "skip", "slow" or something unknown (an error)
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}-{self.lang or 'unlabelled'}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of a markdown page, with the marker right before each, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{page}:{i + 1}: a fence that is never closed"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(before.strip())
        found.append(
            Block(
                page=page,
                line=i + 1,
                lang=fence["lang"],
                text="\n".join(lines[i + 1 : end]) + "\n",
                mark=marker["kind"] if marker else None,
                reason=(marker["reason"] or "").strip() if marker else "",
            )
        )
        i = end + 1
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]
RUNNABLE = [block for block in BLOCKS if block.lang in RUN]


def test_every_block_is_runnable_or_marked():
    problems = []
    for block in BLOCKS:
        if block.lang not in RUN + SHOWN:
            problems.append(f"{block.id}: say what the block is (```{'/```'.join(RUN + SHOWN)})")
        if block.mark is not None and block.mark not in MARKS:
            problems.append(f"{block.id}: unknown marker 'test: {block.mark}' ({MARKS})")
        if block.mark is not None and not block.reason:
            problems.append(f"{block.id}: a 'test: {block.mark}' marker needs a (reason)")
    for page in PAGES:  # a marker must sit right before a fence
        text = page.read_text(encoding="utf-8")
        markers = len(re.findall(r"<!--\s*test:", text))
        marked = sum(1 for b in BLOCKS if b.page == page.relative_to(ROOT).as_posix() and b.mark)
        if markers != marked:
            problems.append(f"{page.name}: {markers - marked} marker(s) not right before a fence")
    for page in UNMARKED_PAGES:
        if any(b.mark for b in BLOCKS if b.page == page):
            problems.append(f"{page} has markers now: delete it from UNMARKED_PAGES")
    assert not problems, "\n".join(problems)
    assert len(RUNNABLE) > 40, "the pages were not found or not parsed"


@dataclass
class Outcome:
    skipped: str = ""  # why it did not run, or ""
    failure: str = ""  # what went wrong, or ""
    seconds: float = 0.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    # Pages run side by side on shared machines: OpenMP threads that spin while they wait
    # take the CPU from the threads that work (a small run of a page took 10-25 s instead
    # of 0.3 s on a loaded 2-core machine). Waiting threads sleep instead; results agree.
    env.setdefault("OMP_WAIT_POLICY", "passive")
    env.pop("LESDE_DEBUG", None)
    return env


def _why_not_run(block: Block) -> str:
    if block.page in UNMARKED_PAGES and block.mark is None:
        return f"{block.id}: {UNMARKED_PAGES[block.page]}"
    if block.mark == "skip":
        return f"{block.id}: {block.reason}"
    if block.mark == "slow" and os.environ.get("LESDE_TEST_SLOW") != "1":
        return f"{block.id}: slow ({block.reason}); LESDE_TEST_SLOW=1 runs it"
    return ""


def _run_block(block: Block, cwd: Path) -> Outcome:
    """Run one block in its page's folder, as a reader would."""
    skipped = _why_not_run(block)
    if skipped:
        return Outcome(skipped=skipped)
    if block.mark == "file":
        later = [b for b in RUNNABLE if b.page == block.page and b.line > block.line]
        if not re.fullmatch(r"[\w.-]+", block.reason):
            return Outcome(failure=f"{block.id}: 'test: file' needs a file name")
        if not any(block.reason in b.text for b in later):
            return Outcome(failure=f"{block.id}: no later block of {block.page} runs it")
        (cwd / block.reason).write_text(block.text, encoding="utf-8")
        return Outcome()
    name = f"block_{block.line}"
    if block.lang == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    elif block.lang == "python":
        (cwd / f"{name}.py").write_text(block.text, encoding="utf-8")
        command = [sys.executable, f"{name}.py"]
    else:
        (cwd / f"{name}.toml").write_text(block.text, encoding="utf-8")
        command = [sys.executable, "-m", "lesde", "validate", f"{name}.toml"]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Outcome(failure=f"{block.id} ran over {BLOCK_TIMEOUT} s: shrink it or mark it slow")
    seconds = time.perf_counter() - started
    if proc.returncode == 0:
        return Outcome(seconds=seconds)
    return Outcome(
        failure=f"{block.id} failed (exit {proc.returncode}, {seconds:.1f} s) in {cwd}:\n"
        f"{block.text}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}",
        seconds=seconds,
    )


@pytest.fixture(scope="session")
def block_outcomes(request, tmp_path_factory):
    """Every selected block's run, started at once: the pages side by side (one worker per
    CPU, the blocks of a page in order in the page's folder), so that the docs cost the
    suite the time of the longest page rather than the sum. block id -> Future[Outcome]."""
    selected = {
        item.callspec.params["block"].id
        for item in request.session.items
        if item.originalname == "test_block_runs_as_written"
    }
    pages: dict[str, list[Block]] = {}
    for block in RUNNABLE:
        if block.id in selected:
            pages.setdefault(block.page, []).append(block)
    futures: dict[str, Future] = {
        block.id: Future() for blocks in pages.values() for block in blocks
    }

    def run_page(page: str, blocks: list[Block]) -> None:
        folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", page))
        for name in ("examples", "bench", "tests"):
            (folder / name).symlink_to(ROOT / name, target_is_directory=True)
        for block in blocks:
            try:
                futures[block.id].set_result(_run_block(block, folder))
            except Exception as err:  # noqa: BLE001 - reported by the block's test
                futures[block.id].set_result(Outcome(failure=f"{block.id}: {err!r}"))

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    pool = ThreadPoolExecutor(max_workers=max(1, cpus or 1))
    for page, blocks in sorted(pages.items(), key=lambda kv: -len(kv[1])):  # longest first
        pool.submit(run_page, page, blocks)
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.id for block in RUNNABLE])
def test_block_runs_as_written(block: Block, block_outcomes):
    outcome = block_outcomes[block.id].result()
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    if outcome.failure:
        pytest.fail(outcome.failure, pytrace=False)


# ----------------------------------------------------------------------------- MODEL.md
# Where a reference to a model notes file that is not in the repository may remain for now,
# and why. An entry that matches nothing any more fails the test: then delete it.
MISSING_MODEL_NOTES_ALLOWED = {
    "cpp/": "C++ comments, outside this change (the cpp owners point them to docs/model.md)",
}


def test_nothing_points_to_a_missing_model_notes_file():
    name = "MODEL" + ".md"  # spelled so that this file does not match itself
    assert not (ROOT / name).exists(), "the model notes are docs/model.md"
    hits = []
    for folder in ("python", "examples", "docs", "bench", "tests", "cpp"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".pyi", ".toml", ".md", ".hpp", ".cpp", ".cuh", ".cu"):
                continue
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if name in line:
                    hits.append((path.relative_to(ROOT).as_posix(), number, line.strip()))
    hits += [
        (page, n, line)
        for page in ("README.md", "ARCHITECTURE.md")
        for n, line in enumerate((ROOT / page).read_text(encoding="utf-8").splitlines(), 1)
        if name in line
    ]
    allowed = [h for h in hits if any(h[0].startswith(p) for p in MISSING_MODEL_NOTES_ALLOWED)]
    wrong = [f"{path}:{n}: {line}" for path, n, line in hits if (path, n, line) not in allowed]
    assert not wrong, f"{name} is not in the repository; point to docs/model.md:\n" + "\n".join(
        wrong
    )
    stale = [p for p in MISSING_MODEL_NOTES_ALLOWED if not any(h[0].startswith(p) for h in hits)]
    assert not stale, f"nothing left to allow in {stale}: delete the entries"


# ------------------------------------------------------------------- the Config table
def _config_table() -> dict[str, tuple[str, str]]:
    """docs/api.md's Config table: field -> (default cell, meaning cell)."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("\n## Config\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            name = cells[0].strip("`")
            assert name not in rows, f"docs/api.md: two rows for Config field {name}"
            rows[name] = (cells[1], cells[2])
    assert rows, "docs/api.md: no Config table under '## Config'"
    return rows


def test_the_config_table_lists_every_field_and_nothing_else():
    fields = [f.name for f in dataclasses.fields(lesde.Config)]
    rows = _config_table()
    missing = [name for name in fields if name not in rows]
    extra = [name for name in rows if name not in fields]
    assert not missing, f"docs/api.md's Config table lacks the fields {missing}"
    assert not extra, f"docs/api.md's Config table has rows for no field: {extra}"
    resolved = lesde.Config().to_dict(resolved=True)
    wrong = []
    for name, (default, _) in rows.items():
        literal = re.fullmatch(r"`([^`]+)`", default)
        if literal and name in resolved:  # a value, not a rule such as `seed`
            try:
                value = ast.literal_eval(literal[1])
            except (ValueError, SyntaxError):
                continue
            if value != resolved[name]:
                wrong.append(f"{name}: documented {value!r}, is {resolved[name]!r}")
    assert not wrong, "docs/api.md's Config defaults disagree:\n" + "\n".join(wrong)


RANGE = re.compile(r"in ([\[(])\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*([\])])")
LOWER = re.compile(r"\((?:>=|at least) (-?[\d.]+)\)")


def _documented_ranges() -> list[tuple[str, float, bool, float, bool]]:
    """(field, low, low included, high, high included) for each range the table states."""
    ranges = []
    for name, (_, meaning) in _config_table().items():
        for m in RANGE.finditer(meaning):
            ranges.append((name, float(m[2]), m[1] == "[", float(m[3]), m[4] == "]"))
        for m in LOWER.finditer(meaning):
            ranges.append((name, float(m[1]), True, math.inf, False))
    return ranges


def test_documented_ranges_are_what_config_accepts():
    """An endpoint the table includes is accepted, one it excludes is refused with a
    ValueError naming the field, and so is a value just outside."""
    ranges = _documented_ranges()
    assert {"label_noise", "sigma", "n_classes"} <= {r[0] for r in ranges}, ranges
    defaults = {f.name: f.default for f in dataclasses.fields(lesde.Config)}
    wrong = []
    for name, low, low_in, high, high_in in ranges:
        integer = isinstance(defaults[name], int) or name in ("record_every", "steps")
        step = 1 if integer else 1e-9
        kind = int if integer else float
        cases = [(low, low_in), (low - step, False)]
        if math.isfinite(high):
            cases += [(high, high_in), (high + step, False)]
        for value, accepted in cases:
            try:
                lesde.Config(**{name: kind(value)})
                took = True
            except ValueError as err:
                took = False
                if name not in str(err):
                    wrong.append(f"{name}={value}: the message does not name it: {err}")
            if took != accepted:
                said = "accepted" if took else "refused"
                wrong.append(f"{name}={value}: {said}, but docs/api.md says otherwise")
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------- README's first example
def _quick_start() -> Block:
    readme = ROOT / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines()
    heading = lines.index("## Quick start") + 1
    return next(b for b in blocks_of(readme) if b.line > heading and b.lang == "python")


def _documented_values(block: Block, after: str) -> dict[str, str]:
    """The "name value" pairs of the comments on the line of ``after`` and on the
    comment-only lines right below it."""
    lines = block.text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    comments = [lines[start].split("#", 1)[1]]
    comments += [line[1:] for line in lines[start + 1 :] if line.startswith("#")][:1]
    return dict(re.findall(r"\b([a-z_0-9]+) (\d+(?:\.\d+)?)\b", " ".join(comments)))


def test_the_quick_start_shows_the_phase_transition(tmp_path, monkeypatch):
    """The README's first example runs as written and shows what the README says it shows:
    alpha > beta drives the loss toward 0 and the accuracy to 1 in every replica, and the
    classes are certified separable; its alpha < beta run is pushed off the labels. The
    values quoted in its comments are the ones it prints."""
    block = _quick_start()
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.text, f"{block.id}", "exec"), scope)
    res = scope["res"]
    cfg = res.config
    assert cfg.signal == "cross_entropy" and cfg.alpha > cfg.beta, cfg
    loss, accuracy = res.metrics["loss"], res.metrics["accuracy"]
    assert np.all(loss[:, -1] < 0.05 * loss[:, 0]), f"the loss does not vanish: {loss[:, -1]}"
    assert np.all(accuracy[:, -1] == 1.0), f"accuracy {accuracy[:, -1]}, not 1 in every replica"
    summary = res.summary()
    assert summary["separable_ncc"] == 1.0, f"not separable in every replica: {summary}"
    other = scope.get("other")
    assert other is not None, "the example shows no alpha < beta run ('other')"
    assert other.config.alpha < other.config.beta, other.config
    assert np.all(other.metrics["loss"][:, -1] > other.metrics["loss"][:, 0]), "loss not up"
    assert other.summary()["accuracy"] < 0.05, other.summary()
    for run, after in ((res, "print(res.summary())"), (other, "print(other.summary())")):
        documented = _documented_values(block, after)
        assert {"loss", "accuracy", "separable_ncc"} <= set(documented), (after, documented)
        printed = run.summary()
        for metric, value in documented.items():
            decimals = len(value.split(".")[1]) if "." in value else 0
            assert round(printed[metric], decimals) == float(value), (
                f"README.md says {metric} {value} after {after}; it prints {printed[metric]}"
            )
