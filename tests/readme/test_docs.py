"""The prose of README.md and docs/*.md: no template token left in it, and one honest figure for vLLM's start-up.

A template token is a name-shaped placeholder (``ENDPOINT_RULE``) that someone meant to replace with a sentence. In
prose (outside code blocks and `code spans`) a word of capitals joined by underscores must therefore be a name the
package or its scripts really use (``END_STREAM``, an HTTP/2 flag the gateway handles); in code anything goes (an
environment variable of another tool). Whatever the shape, TODO/FIXME/TBD/XXX, ``{{ ... }}`` and a capitalised word
that stands alone on a line or ends a paragraph without a full stop are leftovers too.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from tests.readme.snippets import README, ROOT
from vllm_ranker.cli import serve
from vllm_ranker.local_vllm.venv import CPU_START_UP

DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
NAME_SHAPED = re.compile(r"(?<![\w.-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w-])")
# The slowest start of one vLLM on a CPU that anyone saw: MiniLM on a busy 2-core machine.
SLOWEST_CPU_START_S = 130


def prose(text: str) -> str:
    """*text* less its fenced and indented code blocks, code spans, link targets and URLs (each line kept, as
    blank when it was code, so that paragraphs stay where they were)."""
    lines: list[str] = []
    fenced = indented = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            lines.append("")
            continue
        # Markdown's indented code block: 4 spaces after a blank line, running until a line that is not indented.
        indented = line.startswith("    ") and (indented or not lines or not lines[-1].strip())
        lines.append("" if fenced or indented else line)
    out = "\n".join(lines)
    out = re.sub(r"(`+)(?:(?!\1).)+?\1", " ", out, flags=re.S)
    out = re.sub(r"\]\([^)]*\)", "]", out)
    return re.sub(r"https?://\S+", " ", out)


def source_names() -> set[str]:
    found: set[str] = set()
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").glob("*.sh")]:
        found.update(NAME_SHAPED.findall(path.read_text()))
    return found


def leftovers(text: str, names: set[str]) -> list[str]:
    """The template tokens of *text*, each once, sorted."""
    plain = prose(text)
    found = [word for word in NAME_SHAPED.findall(plain) if word not in names]
    found += re.findall(r"\b(?:TODO|FIXME|TBD|XXX)\b|\{\{.*?\}\}", plain)
    for paragraph in re.split(r"\n\s*\n", plain):
        lines = [line.strip() for line in paragraph.strip().splitlines()]
        found += [line for line in lines if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", line)]
        last = re.search(r"\b([A-Z][A-Z0-9_]{2,})\s*$", paragraph)
        if last and not paragraph.strip().startswith(("|", "#", "-", "!")):
            found.append(last.group(1))
    return sorted(set(found))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_token_is_left_in_the_prose(doc: Path) -> None:
    assert leftovers(doc.read_text(), source_names()) == []


def test_the_rule_finds_the_tokens_it_is_for_and_passes_real_names() -> None:
    names = {"END_STREAM"}
    text = (
        "`credential` wins over the environment. ENDPOINT_RULE\n\nA frame with END_STREAM ends it.\n\n"
        "Set `OMP_WAIT_POLICY` to PASSIVE.\n\n    export SOME_VAR=1\n\nTITLE\n\nTODO: the rest.\n\nHello {{ name }}.\n"
    )
    assert leftovers(text, names) == ["ENDPOINT_RULE", "TITLE", "TODO", "{{ name }}"]


def test_vllm_start_up_on_a_cpu_is_stated_alike_and_covers_the_slowest_seen() -> None:
    low, high = (int(n) for n in re.fullmatch(r"(\d+)-(\d+) s", CPU_START_UP).groups())  # type: ignore[union-attr]
    assert low < high and high >= SLOWEST_CPU_START_S
    top = argparse.ArgumentParser(prog="vllm-ranker")
    sub = top.add_subparsers()
    serve.add_parser(sub)
    assert f"a start takes {CPU_START_UP}" in " ".join(sub.choices["serve"].format_help().split())
    readme = " ".join(README.read_text().split())
    assert f"on a CPU a start takes {CPU_START_UP}" in readme
    assert f"takes {CPU_START_UP} to answer" in " ".join((ROOT / "docs" / "local-vllm.md").read_text().split())
    assert "25-80 s" not in readme and "a minute or two" not in readme
