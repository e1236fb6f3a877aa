"""The docs stay true to the code: generated flag tables are current, relative links resolve, the
README names every command and branch, and the example branch of docs/extending.md runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import open_prune
from runs.registry import BRANCHES
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def test_flag_tables_are_generated_from_the_current_code():
    """`docs/generate.py --check` in its own process (a registry another test refreshed cannot leak
    in): a changed flag, help text or default without `make docs` fails here."""
    result = subprocess.run([sys.executable, str(REPO / "docs" / "generate.py"), "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"stale docs (run `make docs`):\n{result.stdout}{result.stderr}"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        found.add(slug)
    return found


def test_every_relative_link_points_at_a_file_that_exists():
    broken = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_names_both_make_targets_every_command_and_every_branch():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    docs = readme + "".join(page.read_text(encoding="utf-8") for page in PAGES[1:])
    assert "make demo" in readme and "make test" in readme
    missing = [name for name in open_prune.COMMANDS if f"`{name}" not in readme]
    assert not missing, f"README.md does not mention the commands {missing}"
    undocumented = [name for name in BRANCHES.names() if f"`{name}`" not in docs]
    assert not undocumented, f"no page mentions the branches {undocumented}"


def _example_branch() -> str:
    """The complete example branch module of docs/extending.md."""
    text = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    example = [block for block in blocks if 'NAME = "late-ticket"' in block]
    assert len(example) == 1, "docs/extending.md should hold one example branch named late-ticket"
    return example[0]


def test_the_example_branch_of_extending_md_runs(tmp_path, cli):
    """Dropped into a folder of the branches package, the example is listed, trains under its mask,
    writes its finished marker, and a rerun retrains nothing."""
    import branches

    folder = tmp_path / "extra_branches"
    folder.mkdir()
    (folder / "late_ticket.py").write_text(_example_branch(), encoding="utf-8")
    locations = branches.__spec__.submodule_search_locations
    locations.append(str(folder))
    BRANCHES.refresh()
    try:
        assert "late-ticket" in BRANCHES.names()
        code, out, err = cli("branch", "late-ticket", *TINY, "--fraction=0.5")
        assert code == 0, err
        assert "late-ticket" in out
        branch_dirs = list(cli.root.glob("train_*/replicate_1/branch_late-ticket_*"))
        assert len(branch_dirs) == 1
        run_dir = branch_dirs[0]
        for name in ("hparams.json", "mask.pt", "sparsity.json", "done.json", "branch_done.json"):
            assert (run_dir / name).is_file(), name
        code, out, err = cli("branch", "late-ticket", *TINY, "--fraction=0.5", "--shuffle")
        assert code == 0, err
        assert len(list(cli.root.glob("train_*/replicate_1/branch_late-ticket_*"))) == 2
    finally:
        locations.remove(str(folder))
        for module in [name for name in sys.modules if name.startswith("branches.late_ticket")]:
            del sys.modules[module]
        BRANCHES.refresh()
