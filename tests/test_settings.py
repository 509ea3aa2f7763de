from __future__ import annotations

import pytest

from shared.settings import InvalidSettings, Settings


def test_environment_overrides_and_round_trip() -> None:
    s = Settings.from_env(
        {"MEDIAMATCH_IMAGE_MATCH_THRESHOLD": "0.7", "MEDIAMATCH_FETCH_ALLOW_NETWORKS": "127.0.0.1/32,::1/128",
         "MEDIAMATCH_API_REQUIRE_API_KEY": "false", "REDIS_URL": "redis://127.0.0.1:6379/0",
         "DATABASE_URL": "postgresql://u@127.0.0.1/db"}
    )
    assert s.image.match_threshold == 0.7 and s.fetch.allow_networks == ("127.0.0.1/32", "::1/128")
    assert s.api.require_api_key is False and not s.embedded and s.database_url().startswith("postgresql")
    assert Settings.from_env(s.to_env()) == s
    assert Settings.from_env({}).embedded and Settings.from_env({}).broker_url() == "filesystem://"


@pytest.mark.parametrize(
    "env",
    [
        {"MEDIAMATCH_IMAGE_MATCH_THRESHOLD": "high"},
        {"MEDIAMATCH_AUDIO_MATCH_THRESHOLD": "1.5"},
        {"MEDIAMATCH_FETCH_ALLOW_NETWORKS": "not-a-network"},
        {"MEDIAMATCH_API_REQUIRE_API_KEY": "maybe"},
        {"MEDIAMATCH_INDEX_IMAGE_QUERY_CELL_SLACK_BITS": "-1"},
        {"MEDIAMATCH_INDEX_IMAGE_CODE_WEIGHT_SIGMA_BITS": "-1"},
        {"MEDIAMATCH_INDEX_IMAGE_EXPAND_FROM_MATCHES": "-1"},
        {"MEDIAMATCH_INDEX_SEARCH_THREADS": "0"},
    ],
)
def test_bad_values_fail_fast(env: dict[str, str]) -> None:
    with pytest.raises(InvalidSettings):
        Settings.from_env(env)
