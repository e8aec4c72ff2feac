"""Title search: hand-made awkward cases, then every title of two real MovieLens releases."""

from pathlib import Path

import polars as pl
import pytest

from bert4rec.errors import AmbiguousTitleError, DataError, TitleError, TitleNotFoundError
from bert4rec.inference.catalog import SUGGEST_MIN, Catalog, typed_ratio
from bert4rec.inference.titles import parse_title

TITLES = {
    1: "Matrix, The (1999)",
    2: "Matrix Reloaded, The (2003)",
    3: "Emma (1996)",
    4: "Emma (1996)",
    5: "Hamlet (1948)",
    6: "Hamlet (1996)",
    7: "Seven (a.k.a. Se7en) (1995)",
    8: "Léon: The Professional (a.k.a. The Professional) (Léon) (1994)",
    9: "Avventura, L' (Adventure, The) (1960)",
    10: "Harry Potter and the Sorcerer's Stone (a.k.a. Harry Potter and the Philosopher's Stone)"
    " (2001)",
    11: "Harry Potter and the Chamber of Secrets (2002)",
    12: "Babylon 5",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    table = pl.DataFrame(
        {
            "item": list(TITLES),
            "title": list(TITLES.values()),
            "genres": [["Action", "Sci-Fi"]] * len(TITLES),
        }
    )
    return Catalog(table, popularity=[float(i) for i in TITLES])


def test_parse_title_splits_names_and_year():
    parsed = parse_title("Léon: The Professional (a.k.a. The Professional) (Léon) (1994)")
    assert parsed.names == ("Léon: The Professional", "The Professional", "Léon")
    assert parsed.year == 1994
    assert parse_title("Matrix, The (1999)").names == ("The Matrix",)
    assert parse_title("Avventura, L' (Adventure, The) (1960)").names == (
        "L'Avventura",
        "The Adventure",
    )
    assert parse_title("Death Note: Desu nôto (2006–2007)").year == 2006
    assert parse_title("Babylon 5") == parse_title("Babylon 5 ")
    assert parse_title("Babylon 5").year is None
    assert parse_title("(500) Days of Summer (2009)").names == ("(500) Days of Summer",)


@pytest.mark.parametrize(
    ("query", "item"),
    [
        ("Matrix, The (1999)", 1),
        ("The Matrix", 1),
        ("the matrix (1999)", 1),
        ("MATRIX", 1),
        ("The Matrix Reloaded", 2),
        ("Se7en", 7),
        ("Seven (1995)", 7),
        ("Leon", 8),
        ("léon: the professional", 8),
        ("L'Avventura", 9),
        ("Harry Potter and the Philosopher's Stone", 10),
        ("harry potter and the sorcerers stone (2001)", 10),
        ("Harry Poter and the Chamber of Secrets", 11),
        ("Hamlet (1996)", 6),
        ("babylon 5", 12),
    ],
)
def test_find_resolves_natural_queries(catalog, query, item):
    assert catalog.find(query) == item


def test_same_title_twice_is_ambiguous_and_lists_both_ids(catalog):
    with pytest.raises(AmbiguousTitleError, match=r"\[id 3\].*\[id 4\]") as info:
        catalog.find("Emma (1996)")
    assert [item for item, _ in info.value.candidates] == [3, 4]


def test_title_without_year_is_ambiguous_across_years(catalog):
    with pytest.raises(AmbiguousTitleError, match="add the year"):
        catalog.find("Hamlet")


def test_wrong_year_is_not_found_and_offers_the_film(catalog):
    with pytest.raises(TitleNotFoundError, match="Matrix, The") as info:
        catalog.find("The Matrix (2000)")
    assert info.value.candidates[0] == (1, "Matrix, The (1999)")


def test_unknown_title_raises_with_candidates(catalog):
    with pytest.raises(TitleNotFoundError, match="no item matches title 'Hary Poter'") as info:
        catalog.find("Hary Poter")
    assert {item for item, _ in info.value.candidates} >= {10, 11}
    with pytest.raises(TitleNotFoundError, match="empty title"):
        catalog.find("  ")


def test_the_start_of_one_title_finds_it_and_of_several_lists_them(catalog):
    """Issue 24: "Harry Potter and the Goblet" is Goblet of Fire; "Harry Potter" is eight
    films, listed (most popular first) instead of "no item matches"."""
    assert catalog.find("Harry Potter and the Cham") == 11
    assert catalog.find("the matrix rel") == 2 and catalog.find("Harry (2001)") == 10
    with pytest.raises(AmbiguousTitleError,
                       match=r"'Harry'.*\b2 titles\b.*Chamber.*\[id 11\].*Sorcerer") as info:
        catalog.find("Harry")
    assert [item for item, _ in info.value.candidates] == [11, 10]
    many = Catalog(pl.DataFrame({"item": list(range(1, 31)),
                                 "title": [f"Part {i} (2000)" for i in range(1, 31)]}))
    with pytest.raises(AmbiguousTitleError, match=r"begins 30 titles: .*; and 20 more; write more"
                       ) as info:
        many.find("Part")
    assert len(info.value.candidates) == 10


def test_a_bare_number_that_is_no_title_says_how_ids_are_written(catalog):
    with pytest.raises(TitleNotFoundError, match=r"'7'.*\bid 7 \(Seven .*'id:7'") as info:
        catalog.find("7")
    assert info.value.candidates[0] == (7, "Seven (a.k.a. Se7en) (1995)")
    with pytest.raises(TitleNotFoundError, match=r"'id:ID'.*\bid 99\b"):
        catalog.find("99")
    films = Catalog(pl.DataFrame({"item": [1, 2], "title": ["1941 (1979)", "Fargo (1996)"]}))
    assert films.find("1941") == 1  # a number that is a title is that title


def test_resolve_takes_ids_or_titles(catalog):
    assert catalog.resolve(7) == 7
    assert catalog.resolve("Se7en") == 7
    with pytest.raises(TitleNotFoundError, match="item id 99 is not in the catalogue"):
        catalog.resolve(99)
    with pytest.raises(TitleError):
        catalog.resolve(True)


def test_resolve_takes_ids_written_as_text(catalog):
    """`id:7` names item 7 wherever text is all a caller has (command line, Python, HTTP)."""
    assert catalog.resolve("id:7") == catalog.resolve(" id: 7") == 7
    with pytest.raises(TitleNotFoundError, match="item id 99 is not in the catalogue"):
        catalog.resolve("id:99")
    texts = Catalog(pl.DataFrame({"item": ["sku-1", "id:2"], "title": ["One", "Two"]}))
    assert texts.resolve("id:sku-1") == "sku-1" and texts.resolve("id:2") == "id:2"


def test_search_ranks_prefix_before_substring_then_popularity(catalog):
    assert [hit.item for hit in catalog.search("matrix")] == [1, 2]
    assert [hit.item for hit in catalog.search("harry potter")] == [11, 10]
    assert [hit.item for hit in catalog.search("philosopher")] == [10]
    assert [hit.item for hit in catalog.search("professional", limit=1)] == [8]
    assert catalog.search("") == []
    assert catalog.search("matirx")[0].item == 1  # fuzzy fallback for a typo


def test_search_offers_look_alikes_only_when_close():
    """Issue 16: a nonsense query finds nothing ("zzqqxx" used to offer "Z (1969)"); a typo,
    even half typed, still finds its film, a whole-name look-alike before a longer one."""
    films = Catalog(pl.DataFrame({
        "item": [1, 2, 3, 4, 5],
        "title": ["Z (1969)", "xXx (2002)", "Godfather, The (1972)", "Matrix, The (1999)",
                  "Matrix Reloaded, The (2003)"],
    }), popularity=[5.0, 4.0, 3.0, 1.0, 2.0])
    assert films.search("zzqqxx") == [] and films.search("qwerty") == []
    assert [hit.item for hit in films.search("godfathr")] == [3]
    assert [hit.item for hit in films.search("matirx")] == [4, 5]  # less popular, closer
    assert films.search("the matrx relo")[0].item == 5  # half typed
    with pytest.raises(TitleNotFoundError) as info:  # an error names no nonsense either
        films.find("zzqqxx")
    assert info.value.candidates == [] and "closest" not in str(info.value)
    with pytest.raises(TitleNotFoundError) as info:
        films.find("The Godfater Part 2 (1974)")
    assert info.value.candidates == [(3, "Godfather, The (1972)")]


def test_typed_ratio_never_lets_a_short_name_inside_the_query_score_high():
    assert typed_ratio("zzqqxx", "z") < SUGGEST_MIN <= typed_ratio("hary pot", "harry potter")
    assert typed_ratio("matirx", "the matrix", score_cutoff=90) == 0.0


def test_entry_and_missing_columns():
    table = pl.DataFrame({"item": ["a", "b"]})
    catalog = Catalog(table)
    assert catalog.title("a") == "a" and catalog.genres("b") == ()
    assert catalog.resolve("b") == "b"
    with pytest.raises(DataError, match="needs an 'item' column"):
        Catalog(pl.DataFrame({"movieId": [1]}))
    with pytest.raises(DataError, match="more than once"):
        Catalog(pl.DataFrame({"item": [1, 1]}))


def ml_latest_small(data_dir: Path) -> pl.DataFrame:
    movies = data_dir / "ml-latest-small" / "movies.csv"
    return pl.read_csv(movies).rename({"movieId": "item"})


def ml_1m(data_dir: Path) -> pl.DataFrame:
    lines = (data_dir / "ml-1m" / "movies.dat").read_text(encoding="latin-1").splitlines()
    rows = [line.split("::") for line in lines]
    return pl.DataFrame({"item": [int(r[0]) for r in rows], "title": [r[1] for r in rows]})


def never_wrong(catalog: Catalog, item: int, query: str) -> str:
    """'self' if `query` finds `item`, 'ambiguous' if `item` is among the candidates."""
    try:
        found = catalog.find(query)
    except AmbiguousTitleError as err:
        assert item in [candidate for candidate, _ in err.candidates], query
        return "ambiguous"
    assert found == item, f"{query!r} found {catalog.title(found)!r}"
    return "self"


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("load", "n_items", "duplicated"), [(ml_latest_small, 9742, 10), (ml_1m, 3883, 0)]
)
def test_every_real_title_finds_its_own_film(data_dir, load, n_items, duplicated):
    table = load(data_dir)
    catalog = Catalog(table)
    assert len(catalog) == n_items
    outcomes = {"self": 0, "ambiguous": 0}
    for item, title in zip(table["item"], table["title"], strict=True):
        outcomes[never_wrong(catalog, item, title)] += 1
        name, year = parse_title(title).names[0], parse_title(title).year
        never_wrong(catalog, item, title.lower())
        never_wrong(catalog, item, f"{name} ({year})" if year else name)
    # Only exact duplicate titles (5 pairs in ml-latest-small) are ambiguous.
    assert outcomes == {"self": n_items - duplicated, "ambiguous": duplicated}


@pytest.mark.realdata
def test_founding_query_and_article_inversion_on_real_titles(data_dir):
    catalog = Catalog(ml_latest_small(data_dir))
    query = [
        "Harry Potter and the Sorcerer's Stone (a.k.a. Harry Potter and the Philosopher's Stone)"
        " (2001)",
        "Harry Potter and the Chamber of Secrets (2002)",
        "Harry Potter and the Prisoner of Azkaban (2004)",
        "Harry Potter and the Goblet of Fire (2005)",
    ]
    assert [catalog.find(title) for title in query] == [4896, 5816, 8368, 40815]
    assert catalog.find("The Matrix") == 2571
    assert catalog.find("Das Boot") == 1233
    one_m = Catalog(ml_1m(data_dir))
    assert one_m.find("The Matrix") == 2571
    assert one_m.find("Leon: The Professional") == 293
