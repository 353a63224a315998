"""lorebooks.formats: World Info and character_book in, the same files out."""

from __future__ import annotations

import pytest

from lorebooks import formats
from lorebooks.formats import LorebookRejected, read_character_book, read_world_info
from tests.companions.sillytavern import LOREBOOK
from tests.lorebooks.samples import card_book, st_entry, world_info


def test_a_world_info_file_exports_back_field_by_field():
    data = world_info()
    exported = formats.to_world_info(read_world_info(data, default_name="eldoria"))
    assert exported.keys() == data.keys()
    for uid, entry in data["entries"].items():
        assert exported["entries"][uid] == entry, uid
    assert exported == data


def test_a_card_book_exports_back_field_by_field():
    for data in (card_book(), LOREBOOK):
        exported = formats.to_character_book(read_character_book(data))
        for got, entry in zip(exported["entries"], data["entries"], strict=True):
            assert got == entry
        assert exported == data


def test_world_info_fields_land_in_their_columns():
    book = read_world_info(world_info())
    by_uid = {e.uid: e for e in book.entries}
    assert book.name == "Eldoria" and book.source == "sillytavern"
    shadow = by_uid[2]
    assert shadow.keys == ["/shadow ?fang(s)?/i"]
    assert shadow.secondary_keys == ["wolf", "smoke"]
    assert (shadow.selective_logic, shadow.position, shadow.depth, shadow.probability) == (
        3,
        "at_depth",
        2,
        60,
    )
    assert (shadow.case_sensitive, shadow.match_whole_words, shadow.prevent_recursion) == (True, False, True)
    assert by_uid[1].exclude_recursion and by_uid[1].position == "after_char"
    assert by_uid[3].constant and by_uid[3].position == "at_depth"  # Author's Note top: nearest place
    moon = by_uid[7]
    assert not moon.enabled
    assert moon.secondary_keys == []  # not selective: SillyTavern ignores them
    assert moon.probability == 100  # useProbability false: it always fires
    assert moon.extras["rest"]["x_unknown"] == {"kept": ["as", "is"]}


def test_an_edited_entry_exports_as_edited_and_keeps_what_has_no_column():
    book = read_world_info(world_info())
    moon = next(e for e in book.entries if e.uid == 7)
    moon.position = "before_char"
    moon.secondary_keys = ["night", "dark"]
    out = formats.to_world_info(book)["entries"]["7"]
    assert out["position"] == 0
    assert (out["keysecondary"], out["selective"]) == (["night", "dark"], True)
    assert out["outletName"] == "sky" and out["x_unknown"] == {"kept": ["as", "is"]}


def test_a_card_book_entry_keeps_its_sillytavern_extensions_and_missing_fields():
    book = read_character_book(card_book())
    harbour = next(e for e in book.entries if e.uid == 9)
    assert harbour.order == 10 and harbour.position == "before_char"
    out = formats.to_character_book(book)["entries"][2]
    assert "comment" not in out and "position" not in out  # absent stays absent
    no_id = next(e for e in book.entries if e.comment == "")
    assert no_id.uid not in (4, 9) and no_id.position == "at_depth" and not no_id.enabled
    assert book.scan_depth == 6 and book.token_budget == 512 and book.recursion_depth == 3


def test_world_info_to_character_book_follows_sillytavern():
    card = formats.to_character_book(read_world_info(world_info()))
    shadow = next(e for e in card["entries"] if e["id"] == 2)
    assert shadow["position"] == "after_char"
    ext = shadow["extensions"]
    assert (ext["position"], ext["depth"], ext["selectiveLogic"], ext["probability"]) == (4, 2, 3, 60)
    assert (ext["group"], ext["sticky"], ext["role"], ext["prevent_recursion"]) == ("beasts", 2, 1, True)
    back = formats.to_world_info(read_character_book(card))
    assert back["entries"]["2"]["group"] == "beasts" and back["entries"]["2"]["position"] == 4


def test_character_book_to_world_info_follows_sillytavern():
    wi = formats.to_world_info(read_character_book(card_book()))
    glade = wi["entries"]["4"]
    assert (glade["key"], glade["disable"], glade["order"], glade["position"]) == (
        ["glade", "forest"],
        False,
        100,
        0,
    )
    assert glade["comment"] == "The glade" and glade["displayIndex"] == 0


def test_a_book_made_here_exports_as_files_sillytavern_reads():
    book = formats.ParsedBook(name="Mine", entries=[formats.ParsedEntry(uid=0, keys=["k"], content="c")])
    wi = formats.to_world_info(book)
    entry = wi["entries"]["0"]
    assert set(formats.WI_ENTRY_DEFAULTS) <= set(entry)
    assert (entry["key"], entry["content"], entry["disable"]) == (["k"], "c", False)
    card = formats.to_character_book(book)
    assert card["entries"][0]["keys"] == ["k"] and card["name"] == "Mine" and card["extensions"] == {}


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"entries": {}}, "world_info"),
        ({"entries": []}, "character_book"),
        ({"spec": "chara_card_v2", "data": {"name": "A"}}, "card"),
        ({"name": "A", "first_mes": "hi"}, "card"),
        ([1, 2], None),
        ({"x": 1}, None),
    ],
)
def test_detect(data, kind):
    assert formats.detect(data) == kind


def test_a_card_is_refused_as_a_lorebook_with_a_pointer():
    with pytest.raises(LorebookRejected) as exc:
        formats.read_any({"spec": "chara_card_v2", "data": {"name": "A", "character_book": {"entries": []}}})
    assert exc.value.code == "is_card" and "character card" in exc.value.message


def test_garbage_shapes_are_refused_clearly():
    for data in ("text", 3, None, {"entries": 3}):
        with pytest.raises(LorebookRejected) as exc:
            formats.read_any(data)
        assert exc.value.code == "not_a_lorebook"


def test_malformed_entries_are_listed_with_their_uid():
    data = {
        "entries": {
            "0": st_entry(0, key="fine, too"),
            "1": st_entry(1, key=[1, 2]),
            "2": "not an object",
            "3": st_entry(3, content=["x"]),
            "4": st_entry("four"),
        }
    }
    with pytest.raises(LorebookRejected) as exc:
        read_world_info(data)
    message = exc.value.message
    assert "entry 1: key should be a list of text" in message
    assert 'entry "2": it is not an object' in message
    assert "entry 3: content should be text" in message
    assert 'entry "four": its uid should be a whole number' in message


def test_only_the_first_problems_are_shown():
    data = {"entries": {str(i): st_entry(i, content=5) for i in range(12)}}
    with pytest.raises(LorebookRejected) as exc:
        read_world_info(data)
    assert exc.value.message.count("content should be text") == formats.MAX_PROBLEMS_SHOWN
    assert "7 more" in exc.value.message


def test_too_many_entries_are_refused_before_they_are_read():
    data = {"entries": {str(i): {} for i in range(100_000)}}
    with pytest.raises(LorebookRejected) as exc:
        read_world_info(data, limits=formats.Limits(max_entries=5000))
    assert exc.value.code == "too_many_entries"
    assert "100000" in exc.value.message.replace(",", "") and "5000" in exc.value.message.replace(",", "")


def test_entry_limits_name_the_entry():
    limits = formats.Limits(entry_max_chars=10, max_keys=2, key_max_chars=5)
    cases = [
        (st_entry(5, key=["a"], content="x" * 11), "content is longer than 10"),
        (st_entry(5, key=["a", "b", "c"]), "at most 2 are allowed"),
        (st_entry(5, key=["toolong"]), "longer than 5 characters"),
    ]
    for entry, text in cases:
        with pytest.raises(LorebookRejected) as exc:
            read_world_info({"entries": {"5": entry}}, limits=limits)
        assert "entry 5" in exc.value.message and text in exc.value.message


def test_a_regex_key_re2_cannot_run_is_refused_with_the_entry():
    for key in ("/(a)\\1/", "/foo(?=bar)/", "/[unclosed/"):
        with pytest.raises(LorebookRejected) as exc:
            read_world_info({"entries": {"8": st_entry(8, key=[key])}})
        assert "entry 8" in exc.value.message and "regular expression" in exc.value.message


def test_a_catastrophic_regex_is_accepted_and_runs_in_linear_time():
    book = read_world_info({"entries": {"0": st_entry(0, key=["/(a+)+$/"])}})
    assert book.entries[0].keys == ["/(a+)+$/"]
    pattern = formats.compile_regex_key(*formats.regex_key("/(a+)+$/"))
    # A backtracking engine needs about 2**100000 steps here; RE2 answers at once.
    assert pattern.search("a" * 100_000 + "!") is None


def test_regex_flags_follow_javascript():
    assert formats.compile_regex_key("fang", "i").search("FANG")
    assert not formats.compile_regex_key("fang", "").search("FANG")


def test_use_regex_is_followed_only_when_it_was_meant():
    plain = {"entries": [{"keys": ["a(b"], "content": "x", "use_regex": True}]}
    assert read_character_book(plain).entries[0].use_regex is False  # not a pattern: plain text
    risu = {"entries": [{"keys": ["fang(s)?"], "content": "x", "use_regex": True}]}
    assert read_character_book(risu).entries[0].use_regex is True
    assert formats.to_character_book(read_character_book(plain)) == plain
