"""The pipeline tests of tests/integration, run against the local Redis Cluster (the
fixtures `r`, `settings` and `redis_url` of tests/cluster/conftest.py override the root ones;
pytest collects the imported test functions here)."""

from __future__ import annotations

from tests.integration.test_pipeline import (  # noqa: F401
    test_pipe001_exact_at_every_tier,
    test_pipe002_duplicates_count_once,
    test_pipe003_bad_entries_go_to_dead_letter_and_batch_goes_on,
    test_pipe004_escalation_across_shards_is_handed_on,
    test_pipe005_two_aggregators_share_the_shards,
)
from tests.integration.test_rebuild import (  # noqa: F401
    test_rebuild001_same_figures_no_dead_letter_twice,
)
