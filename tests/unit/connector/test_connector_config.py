"""The connector's configuration: YAML with environment overrides, defaults, and errors that
name the field without showing a secret."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_BYTES_PER_S,
    DEFAULT_MAX_ROWS,
    DEFAULT_SPOOL_MAX_BYTES,
    GIB,
    MIB,
    ConfigError,
    load_config,
    parse_config,
    parse_size,
)
from hybrid.signing import new_webhook_secret

SECRET = new_webhook_secret()
EXAMPLE = Path(__file__).resolve().parents[3] / "connector" / "config.example.yaml"


def minimal(**extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "secret": SECRET,
        "sources": {
            "erp": {
                "engine": "postgresql",
                "url": "postgresql://reader:pw@db:5432/erp",
                "allowed_tables": ["customers"],
            }
        },
    }
    raw.update(extra)
    return raw


def test_defaults() -> None:
    config = parse_config(minimal(), {})
    assert config.transport == "tunnel"
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 8443)
    assert config.chunk_rows == DEFAULT_CHUNK_ROWS == 5000
    assert config.max_rows == DEFAULT_MAX_ROWS == 50_000
    assert config.spool_max_bytes == DEFAULT_SPOOL_MAX_BYTES == GIB
    assert config.max_bytes_per_s == DEFAULT_MAX_BYTES_PER_S == 256 * 1024
    assert config.poll_wait == 20
    assert config.low_bandwidth is False
    assert config.tls_cert is None
    source = config.sources["erp"]
    assert source.schema == "public"
    assert source.max_rows == 50_000
    assert source.allowed_tables == ("customers",)


def test_low_bandwidth_polls_longer() -> None:
    assert parse_config(minimal(low_bandwidth=True), {}).poll_wait == 25
    assert parse_config(minimal(), {"CONNECTOR_LOW_BANDWIDTH": "yes"}).poll_wait == 25
    assert parse_config(minimal(low_bandwidth=True, poll_wait=5), {}).poll_wait == 5


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(minimal(secret="whsec_bad")))
    other = new_webhook_secret()
    env = {
        "CONNECTOR_CONFIG": str(file),
        "CONNECTOR_ID": "con_42",
        "CONNECTOR_SECRET": other,
        "CONNECTOR_TRANSPORT": "relay",
        "CONNECTOR_CLOUD_URL": "http://127.0.0.1:8787/",
        "CONNECTOR_LISTEN": "127.0.0.1:9000",
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
        "CONNECTOR_LOW_BANDWIDTH": "true",
        "CONNECTOR_PSEUDONYM_KEY": "ab" * 16,
        "CONNECTOR_LOG_LEVEL": "debug",
    }
    config = load_config(None, env)
    assert config.connector_id == "con_42"
    assert config.secret == other
    assert config.transport == "relay"
    assert config.cloud_url == "http://127.0.0.1:8787"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9000)
    assert config.data_dir == tmp_path / "data"
    assert config.low_bandwidth is True
    assert config.pseudonym_key == bytes.fromhex("ab" * 16)
    assert config.log_level == "DEBUG"


def test_secret_and_url_from_files_and_env(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    raw = minimal(secret_file="secret")
    del raw["secret"]
    raw["sources"]["erp"] = {
        "engine": "mysql",
        "url_env": "ERP_URL",
        "allowed_tables": ["orders"],
    }
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(raw))
    config = load_config(file, {"ERP_URL": "mysql://r:p@db/shop"})
    assert config.secret == SECRET
    assert config.sources["erp"].url == "mysql://r:p@db/shop"
    assert config.sources["erp"].engine == "mysql"
    assert config.sources["erp"].schema == "shop"


def test_sizes_accept_units() -> None:
    assert parse_size(1024) == 1024
    assert parse_size("256KiB") == 256 * 1024
    assert parse_size("64 MiB") == 64 * MIB
    assert parse_size("1g") == GIB
    config = parse_config(minimal(spool_max_bytes="2GiB", max_bytes_per_s="0"), {})
    assert config.spool_max_bytes == 2 * GIB
    assert config.max_bytes_per_s == 0


def test_the_repository_example_is_valid() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    env = {
        "ERP_DATABASE_URL": "postgresql://u:p@db/erp",
        "SHOP_DATABASE_URL": "mysql://u:p@db/shop",
        "CONNECTOR_SECRET": SECRET,
    }
    config = parse_config(raw, env)
    assert set(config.sources) == {"erp", "shop"}
    assert config.sources["shop"].schema == "shop"
    assert config.sources["erp"].max_bytes == 64 * MIB


@pytest.mark.parametrize(
    ("change", "env", "field"),
    [
        ({"secret": None}, {}, "secret: missing"),
        ({"secret": "whsec_!!notbase64"}, {}, "secret: not a valid"),
        ({"secret": "whsec_c2hvcnQ="}, {}, "secret: too short"),
        ({"transport": "carrier-pigeon"}, {}, "transport: must be one of"),
        ({"transport": "relay"}, {}, "cloud_url: required"),
        ({"cloud_url": "ftp://x"}, {}, "cloud_url: must be an http"),
        ({"listen": "8443"}, {}, "listen: must be host:port"),
        ({"connector_id": "a/b"}, {}, "connector_id"),
        ({"chunk_rows": 0}, {}, "chunk_rows: must be at least 1"),
        ({"spool_max_bytes": "lots"}, {}, "spool_max_bytes"),
        ({"low_bandwidth": "maybe"}, {}, "low_bandwidth"),
        ({"pseudonym_key": "abcd"}, {}, "pseudonym_key: at least 16"),
        ({"tls_cert": "/c.pem"}, {}, "tls_cert/tls_key"),
        ({"log_level": "LOUD"}, {}, "log_level"),
        ({"sources": {}}, {}, "sources: at least one"),
        ({"colour": "blue"}, {}, "unknown configuration keys: colour"),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], env: dict[str, str], field: str) -> None:
    raw = minimal()
    for key, value in change.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    with pytest.raises(ConfigError, match=field):
        parse_config(raw, env)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"engine": "oracle"}, "sources.erp.engine"),
        ({"url": None}, "sources.erp: give exactly one of url and url_env"),
        ({"url": None, "url_env": "NOPE"}, "environment variable NOPE is not set"),
        ({"url": "mysql://x/y"}, "sources.erp.url: a postgresql source needs"),
        ({"allowed_tables": []}, "sources.erp.allowed_tables"),
        ({"max_rows": -1}, "sources.erp.max_rows"),
        ({"masking": {"customers": {"columns": {"phone": "scramble"}}}}, "masking.customers"),
        ({"masking": {"*": {"unlisted": "keep"}}}, "masking.\\*: unlisted"),
        ({"allowed_table": ["x"]}, "unknown keys: allowed_table"),
    ],
)
def test_source_errors_name_the_field(source: dict[str, Any], field: str) -> None:
    raw = minimal()
    entry = raw["sources"]["erp"]
    for key, value in source.items():
        if value is None:
            entry.pop(key)
        else:
            entry[key] = value
    with pytest.raises(ConfigError, match=field):
        parse_config(raw, {})


def test_errors_never_show_secrets(tmp_path: Path) -> None:
    bad_secret = "whsec_" + "A" * 10 + "!"
    with pytest.raises(ConfigError) as caught:
        parse_config(minimal(secret=bad_secret), {})
    assert bad_secret not in str(caught.value)
    key = "not-a-key!" * 4
    with pytest.raises(ConfigError) as caught:
        parse_config(minimal(pseudonym_key=key), {})
    assert key not in str(caught.value)
    config = parse_config(minimal(), {})
    assert SECRET not in repr(config)
    assert "pw@db" not in repr(config)


def test_a_source_row_cap_never_exceeds_the_connectors() -> None:
    raw = minimal(max_rows=1000)
    raw["sources"]["erp"]["max_rows"] = 5000
    assert parse_config(raw, {}).sources["erp"].max_rows == 1000


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("sources: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(file, {})
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml", {})


def test_pseudonym_keys_in_hex_or_base64() -> None:
    key = bytes(range(32))
    for text in (
        key.hex(),
        "hex:" + key.hex(),
        base64.b64encode(key).decode(),
        "base64:" + base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
    ):
        assert parse_config(minimal(pseudonym_key=text), {}).pseudonym_key == key
    # Hex digits only, but said to be base64: read as base64.
    assert parse_config(minimal(pseudonym_key="base64:" + "ab" * 16), {}).pseudonym_key == (
        base64.b64decode("ab" * 16)
    )
