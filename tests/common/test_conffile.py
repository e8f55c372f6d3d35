"""Configuration files as Windows editors save them: a UTF-8 BOM, or CP932 (Shift_JIS)."""

from __future__ import annotations

import pytest

from pum.common.conffile import decode_config_bytes, parse_seconds, read_config_file
from pum.config import load_config
from pum.errors import ConfigError

PUM_CONF = "# 本番 PUM\nmode=server\ndatabases=main,daily\n"


def test_a_bom_is_dropped_and_said():
    assert decode_config_bytes(b"\xef\xbb\xbfmode=server\n") == ("mode=server\n", "utf-8 with BOM")


def test_cp932_comments_and_values_are_read_and_said():
    text, encoding = decode_config_bytes("# 更新サーバー\nname=東京\n".encode("cp932"))
    assert (text, encoding) == ("# 更新サーバー\nname=東京\n", "cp932")


def test_plain_utf8_is_utf8():
    assert decode_config_bytes(PUM_CONF.encode()).encoding == "utf-8"


@pytest.mark.parametrize("encode", [lambda t: b"\xef\xbb\xbf" + t.encode(), lambda t: t.encode("cp932")])
def test_pum_conf_saved_by_notepad_loads(tmp_path, encode):
    path = tmp_path / "pum.conf"
    path.write_bytes(encode(PUM_CONF))
    assert load_config(path).databases == ("main", "daily")


def test_a_file_neither_utf8_nor_cp932_is_one_error_naming_it(tmp_path):
    path = tmp_path / "pum.conf"
    path.write_bytes(b"mode=\x81\x7f\xff\n")
    with pytest.raises(ConfigError, match="pum.conf: cannot read: neither UTF-8 nor CP932"):
        read_config_file(path)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "soon"])
def test_seconds_must_be_a_finite_positive_number(text):
    with pytest.raises(ValueError):
        parse_seconds(text)
