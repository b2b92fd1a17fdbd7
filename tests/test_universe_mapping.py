"""The default universe is fully mapped to the live signal providers: every sector names
where its TVL, volume and fees (DefiLlama chains or categories), developer activity (GitHub
repositories) and category attention (CoinGecko categories) come from, and every token
belongs to a mapped sector or to the core. An unmapped sector would score on prices alone
on a venue without anyone noticing."""

from __future__ import annotations

import re

from bot.config import load_sector_sources, load_universe
from bot.sources.defillama import CATEGORY_ALIASES, spellings_of


def test_every_default_sector_is_mapped_to_every_provider() -> None:
    universe = load_universe(None)
    sources = load_sector_sources(None)
    assert {s.name for s in universe.sectors} == set(sources)
    known = set().union(*CATEGORY_ALIASES.values())
    for sector in universe.sectors:
        src = sources[sector.name]
        assert src.chains or src.categories, f"{sector.name}: no DefiLlama chain or category"
        for category in src.categories:
            assert spellings_of(category) & known, (sector.name, category)
        assert src.repos, f"{sector.name}: no GitHub repository"
        assert all(r.count("/") == 1 for r in src.repos), sector.name
        assert src.coingecko_categories, f"{sector.name}: no CoinGecko category"
        assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]*", c) for c in src.coingecko_categories)


def test_every_default_token_is_core_or_in_a_mapped_sector() -> None:
    universe = load_universe(None)
    sources = load_sector_sources(None)
    core = {t.symbol for t in universe.core}
    mapped = {t.symbol for s in universe.sectors if sources[s.name].coingecko_categories
              and (sources[s.name].chains or sources[s.name].categories)
              for t in s.tokens}
    unplaced = {t.symbol for t in universe.all_tokens()} - core - mapped
    assert unplaced == set()


def test_no_two_sectors_share_a_coingecko_category() -> None:
    """A shared category would give two sectors the same attention, growth for growth."""
    seen: dict[str, str] = {}
    for name, src in load_sector_sources(None).items():
        for category in src.coingecko_categories:
            assert category not in seen, (category, seen.get(category), name)
            seen[category] = name
