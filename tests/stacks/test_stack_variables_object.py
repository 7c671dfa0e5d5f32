"""composition ``secondary_stack_variables`` in every form rokka's reference shows: URL
query text, a JSON object in the options, and an object of expressions in the operation's
``expressions`` (rokka's docs: ``{"w": "image.width", "h": "image.height"}``). A plan holds
one form, the query text, whatever was written; a stored stack echoes what was sent."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from stacks.errors import StackError
from stacks.evaluation import RenderContext
from stacks.resolve import build_plan
from stacks.stack import parse_stack_json
from stacks.url import parse_render_path


def composition(options: dict | None = None, expressions: dict | None = None) -> dict:
    entry: dict = {
        "name": "composition",
        "options": {"mode": "background", "secondary_stack": "other", **(options or {})},
    }
    if expressions is not None:
        entry["expressions"] = expressions
    return {"operations": [entry], "variables": {"t": "hello"}}


def planned(body: dict, url: str = "s/abcdef.png", image: dict | None = None) -> str | None:
    stack = parse_stack_json(body, "s")
    context = RenderContext(image=image or {})
    plan = build_plan(stack, parse_render_path(url), context=context)
    return plan.operations[0].options["secondary_stack_variables"]


def test_query_text_stays_as_written():
    assert planned(composition({"secondary_stack_variables": "w=300&t=hi"})) == "w=300&t=hi"


def test_an_object_becomes_the_same_query_text():
    body = composition({"secondary_stack_variables": {"w": 300, "t": "hi", "on": True}})
    assert planned(body) == "w=300&t=hi&on=true"


def test_values_with_query_characters_survive_the_encoding():
    text = planned(composition({"secondary_stack_variables": {"t": "a&b=c d/ü", "x": 1.5}}))
    assert parse_qsl(text) == [("t", "a&b=c d/ü"), ("x", "1.5")]


def test_a_stored_stack_echoes_the_object_it_was_given():
    body = composition({"secondary_stack_variables": {"w": 300, "t": "hi"}})
    echoed = parse_stack_json(body, "s").to_json()
    assert echoed["stack_operations"][0]["options"]["secondary_stack_variables"] == {
        "w": 300,
        "t": "hi",
    }


def test_an_object_of_expressions_is_evaluated_per_render():
    body = composition(
        expressions={"secondary_stack_variables": {"w": "image.width", "t": "$t ~ '!'"}}
    )
    assert planned(body, image={"width": 640}) == "w=640&t=hello%21"
    # URL variables reach the expressions, as everywhere
    assert planned(body, "s/v-t-bye/abcdef.png", image={"width": 8}) == "w=8&t=bye%21"
    echoed = parse_stack_json(body, "s").to_json()
    assert echoed["stack_operations"][0]["expressions"] == body["operations"][0]["expressions"]


def test_a_single_expression_may_still_compute_the_query_text():
    body = composition(expressions={"secondary_stack_variables": "'w=' ~ image.width"})
    assert planned(body, image={"width": 5}) == "w=5"


@pytest.mark.parametrize(
    ("expressions", "named"),
    [
        ({"secondary_stack_variables": {"w": "image.width +"}}, "secondary_stack_variables.w"),
        ({"secondary_stack_variables": {"w": 5}}, "secondary_stack_variables.w"),
        ({"secondary_stack_variables": {"bad-name": "1"}}, "invalid variable name"),
        ({"secondary_color": {"w": "1"}}, "must be a string"),  # objects only for variables
    ],
)
def test_bad_expression_objects_are_400_at_save_time(expressions, named):
    with pytest.raises(StackError) as caught:
        parse_stack_json(composition(expressions=expressions), "s")
    assert caught.value.status == 400
    assert named in caught.value.message


def test_an_expression_object_computing_a_list_is_400_naming_the_type():
    body = composition(expressions={"secondary_stack_variables": {"w": "[1, 2]"}})
    with pytest.raises(StackError) as caught:
        planned(body)
    assert "secondary_stack_variables" in caught.value.message
