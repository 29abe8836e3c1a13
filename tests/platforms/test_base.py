"""Platforms are found through the ``tiers.platforms`` entry points, the local one too."""

from __future__ import annotations

from importlib.metadata import EntryPoint, EntryPoints
from pathlib import Path

import pytest

from tests.config.test_options import install
from tiers.config import load
from tiers.errors import UsageError
from tiers.platforms import base
from tiers.platforms.base import Platform, available, load_platform


def test_the_local_platform_is_registered_like_any_other(plyr: Path) -> None:
    assert available()["local"] == "tiers.platforms.local.platform:LocalPlatform"
    platform = load_platform("local")(load(plyr).config, plyr.parent)
    assert isinstance(platform, Platform)
    assert platform.name == "local"


def test_an_unknown_platform_names_those_installed() -> None:
    with pytest.raises(UsageError, match=r"no platform 'fly' is installed \(known: local\)"):
        load_platform("fly")


def test_two_packages_claiming_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    points = EntryPoints(
        [
            EntryPoint("local", "tiers.platforms.local.platform:LocalPlatform", base.GROUP),
            EntryPoint("local", "other_package:Local", base.GROUP),
        ]
    )
    monkeypatch.setattr(base, "entry_points", lambda group: points)
    with pytest.raises(UsageError, match="two packages register the platform 'local'"):
        available()


def test_a_class_without_the_interface_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    points = EntryPoints([EntryPoint("broken", "pathlib:PurePath", base.GROUP)])
    monkeypatch.setattr(base, "entry_points", lambda group: points)
    with pytest.raises(UsageError, match="does not implement tiers' interface"):
        load_platform("broken")


def test_a_driver_takes_the_keys_tiers_checks_for_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "from tiers.platforms.base import Platform\n\n"
        "class OwnFly(Platform):\n"
        '    name = "fly"\n'
        "    options = None  # keys of its own, not those fly bindings are checked by\n"
    )
    install(tmp_path / "site", "own_fly", source, fly="OwnFly")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(UsageError) as caught:
        load_platform("fly")
    assert str(caught.value) == (
        "platform 'fly' (own_fly:OwnFly) must declare options = tiers.platforms.options.Fly"
    )
