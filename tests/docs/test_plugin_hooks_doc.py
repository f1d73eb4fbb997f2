"""docs/plugin_hooks.md has a ``## name(args)`` heading for every hook spec."""

import re
import types
from pathlib import Path

import pluggy

from stack.hookspecs import hookspec
from stack.plugins import get_plugin_manager

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugin_hooks.md"
HOOK_HEADING = re.compile(r"^## \w+\(.*\)[ \t]*$", re.MULTILINE)


def expected_headings(pm: pluggy.PluginManager) -> dict[str, str]:
    """Hook name -> the heading that documents it, from the hook spec's arguments."""
    headings = {}
    for name in dir(pm.hook):
        if name.startswith("_"):
            continue
        spec = getattr(pm.hook, name).spec
        if spec is None:  # an implementation of a hook nobody declared; not ours to document
            continue
        headings[name] = f"## {name}({', '.join(spec.argnames)})"
    return headings


def doc_problems(pm: pluggy.PluginManager, doc_text: str) -> list[str]:
    """Hooks whose heading is missing, and hook headings that match no hook."""
    wanted = expected_headings(pm)
    present = {m.group(0).rstrip() for m in HOOK_HEADING.finditer(doc_text)}
    problems = [f"no heading {heading!r}" for heading in sorted(wanted.values()) if heading not in present]
    problems += [f"{heading!r} matches no hook" for heading in sorted(present - set(wanted.values()))]
    return problems


def plugin_manager() -> pluggy.PluginManager:
    return get_plugin_manager(load_entry_points=False)


def test_every_hook_has_a_heading():
    pm = plugin_manager()
    assert "register_providers" in expected_headings(pm)
    assert doc_problems(pm, DOC.read_text()) == []


def test_an_undocumented_hook_is_reported():
    pm = plugin_manager()
    fake_specs = types.ModuleType("fake_hookspecs")

    @hookspec
    def register_widgets(register, config):
        """A hook that exists only in this test."""

    fake_specs.register_widgets = register_widgets
    pm.add_hookspecs(fake_specs)
    assert doc_problems(pm, DOC.read_text()) == ["no heading '## register_widgets(register, config)'"]


def test_a_heading_with_the_wrong_arguments_is_reported():
    doc = DOC.read_text().replace("## register_providers(register)", "## register_providers(register, extra)")
    assert doc_problems(plugin_manager(), doc) == [
        "no heading '## register_providers(register)'",
        "'## register_providers(register, extra)' matches no hook",
    ]
