"""Text around the engine: chat prompts, incremental detokenization and stop strings.

Streaming text from tokens is not ``decode(token)`` per token: byte-level BPE splits multi-byte characters
across tokens and some tokenizers merge spaces across token boundaries. ``Detokenizer`` decodes a sliding
window of ids and releases only text that can no longer change (vLLM's prefix/read-offset method), and holds
back the last few characters while they could still be the start of a stop string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiaas.errors import InvalidInput

# For tokenizers without a chat template (base models such as Gemma-3-270M): a plain transcript that a base
# model continues sensibly, ending with the assistant's turn.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% else %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
FALLBACK_STOP = ["\nUser:"]  # a base model would go on to write the user's next turn


def content_text(content: Any) -> str:
    """OpenAI message content: a string, or a list of parts of which the text parts are used."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else getattr(part, "type", None)
        if kind != "text":
            raise InvalidInput(f"message content of type {kind!r} is not supported; send text", param="messages")
        parts.append(part["text"] if isinstance(part, dict) else part.text)
    return "".join(parts)


def render_chat(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[int], bool]:
    """Token ids of the chat prompt, and whether the fallback template was used (then ``FALLBACK_STOP``
    applies). Uses the tokenizer's own template when it has one."""
    template = getattr(tokenizer, "chat_template", None)
    try:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, chat_template=template or FALLBACK_TEMPLATE
        )
    except Exception as e:  # a template may raise on a role order it does not accept
        raise InvalidInput(f"the model's chat template rejected these messages: {e}", param="messages") from None
    # the template writes any BOS itself; do not add a second one
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    ids = tokenizer.encode(text, add_special_tokens=add_special and template is None)
    return ids, template is None


@dataclass(slots=True)
class Released:
    text: str  # newly final text
    stopped: bool = False  # a stop string matched; ``text`` ends just before it
    offsets: list[int] | None = None


class Detokenizer:
    """Turns a growing list of token ids into final text increments, cutting at the first stop string."""

    def __init__(self, tokenizer: Any, prompt_ids: list[int], stop: list[str] | None = None) -> None:
        self.tok = tokenizer
        self.ids: list[int] = list(prompt_ids[-4:])  # a little context so the first token decodes as in-text
        self.prefix = 0
        self.read = len(self.ids)
        self.stop = [s for s in (stop or []) if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.pending = ""  # decoded, not yet released (could begin a stop string)
        self.text = ""  # released so far
        self.done = False

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def add(self, token_ids: list[int], final: bool = False) -> Released:
        if self.done:
            return Released("", True)
        self.ids.extend(token_ids)
        prefix_text = self._decode(self.ids[self.prefix : self.read])
        new_text = self._decode(self.ids[self.prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.pending += new_text[len(prefix_text) :]
            self.prefix, self.read = self.read, len(self.ids)
        elif final and len(new_text) > len(prefix_text):
            self.pending += new_text[len(prefix_text) :].rstrip("\ufffd")
        if self.stop:
            # search the released tail too: a stop string may straddle what was released and what is new
            window = self.text[-self.hold :] if self.hold else ""
            hay = window + self.pending
            cut = min((i for i in (hay.find(s) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                out = hay[len(window) : max(cut, len(window))]
                self.text += out
                self.pending = ""
                self.done = True
                return Released(out, True)
        keep = 0 if final or not self.stop else min(self.hold, len(self.pending))
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        self.text += out
        return Released(out)

    def token_text(self, token_id: int) -> str:
        return self.tok.decode([token_id], skip_special_tokens=False)
