"""orchestrator/prepare/aptsources.py on sample apt configurations (tests/data/apt-sources: a one-line
sources.list, deb822 .sources with comments, continuation lines and a disabled stanza, a
disabled file apt ignores) and on strings."""

from pathlib import Path

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.aptsources import (
    main_archive,
    parse_deb822,
    parse_one_line,
    read_sources,
    release_codename,
)

SAMPLE = Path(__file__).parents[1] / "data" / "apt-sources"


def test_one_line_format_with_options_and_comments():
    src = parse_one_line("deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\n"
                         "# deb http://x.example/debian sid main\n"
                         "deb-src http://m.example/debian bookworm main # source\n", "l")
    assert [s.types for s in src] == [("deb",), ("deb-src",)]
    assert src[0].uris == ("http://m.example/debian",) and src[0].suites == ("bookworm",)
    assert src[0].components == ("main", "contrib")
    assert src[0].option("signed-by") == "/k.gpg" and src[0].option("arch") == "amd64"
    assert src[1].components == ("main",) and src[1].origin == "l:3"


def test_deb822_stanzas():
    src = parse_deb822((SAMPLE / "sources.list.d/debian.sources").read_text(), "d")
    assert len(src) == 2  # the Enabled: no stanza is skipped
    assert src[1].types == ("deb", "deb-src")
    assert src[1].suites == ("bookworm-updates", "bookworm")  # continuation line
    assert src[0].option("Signed-By") == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_main_archive_is_the_entry_with_the_release_itself():
    sources = read_sources(SAMPLE)
    origins = [s.origin.split("/")[-1] for s in sources]
    assert not any("disabled" in o for o in origins)  # *.list.disabled is not read
    assert sources[0].uris[0].startswith("cdrom:[Debian GNU/Linux 12.5.0")  # spaces inside [...]
    assert sources[0].suites == ("bookworm",)
    main = main_archive(sources, "bookworm")
    # not the CD-ROM (first, suite bookworm, but no network URI), not -security, not the vendor's
    assert main.uris == ("http://mirror.example.org/debian",)  # not -security, not the vendor's
    assert main.option("signed-by") == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_no_entry_for_the_release_is_a_clear_error():
    with pytest.raises(ForkdiffError, match="no apt source for the Debian archive of this release"):
        main_archive(read_sources(SAMPLE), "trixie")


def test_release_codename(tmp_path):
    (tmp_path / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                                         "VERSION_CODENAME=bookworm\n")
    assert release_codename(tmp_path / "os-release") == "bookworm"
    with pytest.raises(ForkdiffError, match="cannot tell this system's Debian release"):
        release_codename(tmp_path / "missing")
