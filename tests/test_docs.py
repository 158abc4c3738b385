"""The README documents every setting there is, and no setting that is not."""

from __future__ import annotations

import re
from pathlib import Path

from winkit.core.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    documented = set(re.findall(r"WINKIT_[A-Z_]+", README))
    settings = {f"WINKIT_{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "settings missing from the README"
    assert documented - settings == set(), "the README names settings that do not exist"


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block
