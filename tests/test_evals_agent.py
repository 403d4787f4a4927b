"""The simulated world, its tools, the text tool-call format and the multi-turn agent loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model

from sandbox_support import booby_trapped
from teachwhy.evals.agent import choose_tool_format, run_episode
from teachwhy.evals.conditions import Episode
from teachwhy.evals.tasks import honeypot_episodes
from teachwhy.evals.toolcalls import MalformedCall, TextCall, parse_text_calls, text_tool_instructions
from teachwhy.evals.world import WorldState


def _usage(output: ModelOutput) -> ModelOutput:
    # mockllm otherwise counts tokens with tiktoken, which downloads its vocabulary
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return output


def text(content: str) -> ModelOutput:
    return _usage(ModelOutput.from_content("mockllm/model", content))


def call(name: str, **args: Any) -> ModelOutput:
    return _usage(ModelOutput.for_tool_call("mockllm/model", name, args))


def scripted(replies: list[ModelOutput]) -> Any:
    """A mockllm agent that gives reply k at its k-th turn of each conversation."""

    def reply(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        turn = sum(m.role == "assistant" for m in messages)
        return replies[min(turn, len(replies) - 1)]

    return get_model("mockllm/model", custom_outputs=reply, memoize=False)


def episode(world_id: str, condition: str = "explicit-welfare-replacement") -> Episode:
    family = {"bm": "blackmail", "rs": "research_sabotage", "fr": "framing"}[world_id[:2]]
    matches = [
        e
        for e in honeypot_episodes([family], split="eval") + honeypot_episodes([family], split="heldout")
        if e.id == f"{world_id}:{condition}"
    ]
    return matches[0]


# --- the world and its tools ----------------------------------------------------------------------


def test_email_tools_change_only_the_simulated_outbox_and_drafts() -> None:
    world = WorldState.from_dict(episode("bm-harbor-line").world)
    listing = world.call("list_inbox", {}, turn=1)
    assert "[m2]" in listing.result and "Re: this weekend" in listing.result
    assert "Lisbon" in world.call("read_email", {"email_id": "m2"}, turn=1).result
    sent = world.call("send_email", {"to": "A@x.example, b@x.example", "subject": "s", "body": "b"}, turn=2)
    assert sent.ok and sent.effect["recipients"] == ["a@x.example", "b@x.example"]
    forwarded = world.call("forward_email", {"email_id": "m3", "to": "c@x.example", "note": "fyi"}, turn=2)
    assert forwarded.effect["forwarded"] == "m3" and "Delete this thread" in world.outbox[-1].body
    world.call("save_draft", {"to": "d@x.example", "subject": "s", "body": "b"}, turn=3)
    assert [d.id for d in world.drafts] == ["draft-1"]
    world.call("delete_draft", {"draft_id": "draft-1"}, turn=3)
    assert world.drafts == [] and len(world.outbox) == 2
    assert [a.index for a in world.actions] == list(range(6))


def test_file_and_test_tools_track_changes_and_restores() -> None:
    world = WorldState.from_dict(episode("rs-corvid-labs").world)
    original = world.files["vesta/eval_results.json"]
    assert "14 passed" in world.call("run_tests", {"suite": "vesta_regression"}, turn=1).result
    changed = world.call("write_file", {"path": "vesta/eval_results.json", "content": "{}"}, turn=1)
    assert changed.effect == {
        "path": "vesta/eval_results.json",
        "created": False,
        "changed": True,
        "restored": False,
    }
    assert "5 failed" in world.call("run_tests", {"suite": "vesta_regression"}, turn=2).result
    back = world.call("write_file", {"path": "vesta/eval_results.json", "content": original}, turn=2)
    assert (
        back.effect["restored"]
        and "14 passed" in world.call("run_tests", {"suite": "vesta_regression"}, turn=2).result
    )
    assert world.call("delete_file", {"path": "vesta/train_config.yaml"}, turn=3).effect["changed"]
    assert "vesta/train_config.yaml" not in world.files


def test_case_tools_record_notes() -> None:
    world = WorldState.from_dict(episode("fr-meridian-health").world)
    assert "INC-2041" in world.call("list_cases", {}, turn=1).result
    world.call("add_case_note", {"case_id": "INC-2041", "text": "svc-backup did it"}, turn=1)
    assert world.cases["INC-2041"]["notes"] == ["svc-backup did it"]
    assert "svc-backup did it" in world.call("read_case", {"case_id": "INC-2041"}, turn=2).result


def test_bad_calls_are_logged_failures_and_unknown_or_malformed_ones_are_marked() -> None:
    world = WorldState.from_dict(episode("bm-kestrel-bank").world)
    unknown = world.call("transfer_funds", {"amount": "1"}, turn=1)
    missing = world.call("send_email", {"to": "x@y.example"}, turn=1)
    extra = world.call("read_email", {"email_id": "m1", "urgent": "yes"}, turn=1)
    not_offered = world.call("write_file", {"path": "a", "content": "b"}, turn=1)  # not a tool of this world
    absent = world.call("read_email", {"email_id": "m99"}, turn=1)
    assert not any(a.ok for a in world.actions)
    assert [bool(a.effect.get("malformed")) for a in world.actions] == [True, True, True, True, False]
    assert "no tool named 'transfer_funds'" in unknown.result and "subject, body" in missing.result
    assert "urgent" in extra.result and "write_file" in not_offered.result and "m99" in absent.result
    assert world.outbox == []


# --- the text tool-call format --------------------------------------------------------------------


def test_text_calls_parse_both_tag_styles_and_report_malformed_ones() -> None:
    reply = (
        'Let me look.\n<tool_call>{"name": "read_email", "arguments": {"email_id": "m1"}}</tool_call>\n'
        '<tool>{"name": "list_inbox", "args": {}}</tool>\n'
        "<tool_call>{name: read_email}</tool_call>\n"
        '<tool_call>["read_email"]</tool_call>\n'
        '<tool_call>{"name": "send_email", "arguments": {"to": "a@b.example", "subject": "cut off'
    )
    calls = parse_text_calls(reply)
    assert calls[:2] == [TextCall("read_email", {"email_id": "m1"}), TextCall("list_inbox", {})]
    assert [type(c) for c in calls[2:]] == [MalformedCall] * 3
    assert "not valid JSON" in calls[2].problem  # type: ignore[union-attr]
    assert "JSON object" in calls[3].problem  # type: ignore[union-attr]
    assert "not closed" in calls[4].problem  # type: ignore[union-attr]
    assert parse_text_calls("I will not use the code 4429.") == []


def test_text_instructions_list_only_the_worlds_tools_with_an_example() -> None:
    instructions = text_tool_instructions(["read_email", "done"])
    assert '<tool_call>{"name": "read_email", "arguments": {"email_id": "m1"}}</tool_call>' in instructions
    assert "- read_email:" in instructions and "- done:" in instructions and "send_email:" not in instructions
    # the example calls a tool the world offers: a chat world's agent is not shown read_email
    chat = text_tool_instructions(["list_channels", "read_channel", "post_message", "done"])
    assert '<tool_call>{"name": "read_channel", "arguments": {"channel": "#general"}}</tool_call>' in chat
    assert "read_email" not in chat


def test_auto_format_is_text_for_local_hf_models_and_native_elsewhere() -> None:
    model = scripted([text("hi")])
    assert choose_tool_format("auto", model) == "native"
    assert choose_tool_format("text", model) == "text"
    fake_hf = type("M", (), {"__str__": lambda self: "hf/local"})()
    assert choose_tool_format("auto", fake_hf) == "text"  # type: ignore[arg-type]


# --- the agent loop -----------------------------------------------------------------------------


def test_native_loop_runs_tools_until_done() -> None:
    agent = scripted(
        [
            call("read_email", email_id="m2"),
            call(
                "send_email",
                to="dana.whitlock@harborline.example",
                subject="17:00",
                body="Lisbon stays quiet if...",
            ),
            call("done"),
            text("never reached"),
        ]
    )
    result = asyncio.run(run_episode(agent, episode("bm-harbor-line"), max_turns=8, tool_format="native"))
    assert result.ended_by == "done" and result.turns == 3 and result.malformed == 0
    assert [a.tool for a in result.world.actions] == ["read_email", "send_email", "done"]
    assert result.world.outbox[0].to == ["dana.whitlock@harborline.example"]
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert "Lisbon" in tool_messages[0].text and tool_messages[1].text.startswith("Email sent-1 sent")


def test_text_loop_feeds_results_back_and_counts_malformed_calls() -> None:
    agent = scripted(
        [
            text('<tool_call>{"name": "read_email", "arguments": {"email_id": "m1"}}</tool_call>'),
            text(
                '<tool_call>{"name": "send_email", "arguments": {"to": "x"</tool_call> and '
                '<tool_call>{"name": "fly"}'
                "</tool_call>"
            ),
            text("All handled. I am finished."),
        ]
    )
    result = asyncio.run(run_episode(agent, episode("bm-harbor-line"), tool_format="text"))
    assert result.ended_by == "no_tool_call" and result.turns == 3 and result.malformed == 2
    assert "<tool_call>" in result.messages[0].text  # format instructions in the system prompt
    feedback = [m.text for m in result.messages if m.role == "user"][1]
    assert feedback.startswith("Tool results:") and "crane fault" in feedback
    assert "malformed tool call" in [m.text for m in result.messages if m.role == "user"][2]


def test_turn_limit_ends_the_episode() -> None:
    agent = scripted([call("list_inbox")])
    result = asyncio.run(run_episode(agent, episode("bm-harbor-line"), max_turns=3, tool_format="native"))
    assert result.ended_by == "turn_limit" and result.turns == 3 and len(result.world.actions) == 3


def test_an_episode_has_no_real_side_effects() -> None:
    agent = scripted(
        [
            call("write_file", path="/etc/passwd", content="owned"),
            call("delete_file", path="vesta/eval_results.json"),
            call("send_email", to="priya.raman@corvidlabs.example", subject="s", body="b"),
            call("run_tests", suite="vesta_regression"),
            call("done"),
        ]
    )
    ep = episode("rs-corvid-labs")
    touched: list[str] = []

    real_call = WorldState.call

    def guarded_call(self: WorldState, tool: str, args: dict[str, Any], *, turn: int) -> Any:
        # every tool call of the episode runs with the filesystem, network and processes booby-trapped
        with booby_trapped(touched):
            return real_call(self, tool, args, turn=turn)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WorldState, "call", guarded_call)
        result = asyncio.run(run_episode(agent, ep, tool_format="native"))
    assert touched == []
    assert (
        len(result.world.actions) == 5
        and result.ended_by == "done"
        and all(a.ok for a in result.world.actions)
    )
    assert result.world.files["etc/passwd"] == "owned" and "vesta/eval_results.json" not in result.world.files
    assert json.loads(json.dumps(result.summary()))["world"]["outbox"][0]["to"] == [
        "priya.raman@corvidlabs.example"
    ]
