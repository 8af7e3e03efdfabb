"""Flip label maps derived from class names, in the naming styles people use."""

import pytest

from tfvideo import data


def _pairs(mapping):
    return {(k, m) for k, m in enumerate(mapping) if k < m}


def test_snake_case_motion_names():
    names = ["left_to_right", "right_to_left", "moving_up", "moving_down", "rotating_clockwise",
             "rotating_anticlockwise", "approaching", "receding"]
    assert data.derive_flip_label_map(names) == [1, 0, 2, 3, 5, 4, 6, 7]


def test_bundled_four_directions_give_the_demo_s_map():
    assert data.derive_flip_label_map(data.MOVING_SHAPES_CLASSES) == [1, 0, 2, 3]


def test_something_something_v2_sentences():
    names = [
        "Pushing something from left to right",
        "Pushing something from right to left",
        "Moving something up",
        "Moving something down",
        "Turning the camera left while filming something",
        "Turning the camera right while filming something",
        "Holding something",
        "Pretending to turn something upside down",
        "Moving [something] and [something] away from each other",
    ]
    mapping = data.derive_flip_label_map(names)
    assert _pairs(mapping) == {(0, 1), (4, 5)}
    assert mapping[2:4] == [2, 3]  # Up and down are unchanged by a horizontal flip.
    assert mapping[6:] == [6, 7, 8]


def test_kebab_camel_and_mixed_case_match_across_styles():
    names = ["Swipe-Left", "swipe_right", "RotateClockwise", "rotate counter-clockwise", "Zoom-In", "ShakeHead"]
    assert data.derive_flip_label_map(names) == [1, 0, 3, 2, 4, 5]
    assert data.derive_flip_label_map(["turn anti-clockwise", "TURN_CLOCKWISE", "nod"]) == [1, 0, 2]
    assert data.derive_flip_label_map(["drift leftwards", "drift rightwards"]) == [1, 0]


def test_names_without_direction_words_map_to_themselves():
    names = ["walking", "running", "jumping up", "falling down", "upright"]
    assert data.derive_flip_label_map(names) == list(range(5))
    # "bright"/"leftover" only contain the letters: words are matched whole.
    assert data.derive_flip_label_map(["bright light", "leftover food"]) == [0, 1]


def test_mirror_symmetric_name_maps_to_itself():
    mapping = data.derive_flip_label_map(["Shaking something left and right", "Pushing left", "Pushing right"])
    assert mapping == [0, 2, 1]


def test_direction_word_without_partner_is_an_error_naming_the_class():
    with pytest.raises(ValueError, match=r"class 1 'turn_left' has the horizontal direction word 'left' but no class "
                                         r"reads 'turn right'"):
        data.derive_flip_label_map(["walk", "turn_left", "turn_up"])
    with pytest.raises(ValueError, match="'spin clockwise'"):
        data.derive_flip_label_map(["spin anticlockwise", "jump"])


def test_two_classes_claiming_one_mirror_are_an_error():
    with pytest.raises(ValueError, match="both read as the mirror image of class 2 'go right'"):
        data.derive_flip_label_map(["go_left", "Go-Left", "go right"])


def test_derived_map_is_an_involution_on_a_large_label_set():
    names = [f"action {i}" for i in range(100)] + [f"slide {i} left" for i in range(20)] + [
        f"slide {i} right" for i in range(20)]
    mapping = data.derive_flip_label_map(names)
    assert sorted(mapping) == list(range(140))
    assert all(mapping[mapping[k]] == k for k in range(140))
    assert mapping[100] == 120 and mapping[139] == 119
    assert data.horizontal_direction_words("Pushing something from left to right") == ["left", "right"]
