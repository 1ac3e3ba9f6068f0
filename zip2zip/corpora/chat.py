"""Chat turns made from the corpora: user requests and assistant answers in a chat template's roles.

The project has no chat corpus, and short chat prompts and answers are where an empty codebook saves least.
These conversations give the chat template's user and assistant parts real content of a split: a user asks
about a passage of a prose or code document (one of a few fixed phrasings, different ones for the train and
the held-out split) and the assistant answers with the passage. What they measure is the template's own runs
(role names, turn ends) and turn-shaped text, not the language of real users.
"""

from __future__ import annotations

from zip2zip.corpora.store import load_corpus

__all__ = ["HELDOUT_REQUESTS", "TRAIN_REQUESTS", "chat_conversations"]

TRAIN_REQUESTS: tuple[str, ...] = (
    "Can you explain {topic}?",
    "What does {topic} mean?",
    "Please tell me about {topic}.",
    "I need help with {topic}. Can you show me?",
    "How does {topic} work?",
    "Write something about {topic}.",
)
HELDOUT_REQUESTS: tuple[str, ...] = (
    "Could you walk me through {topic}?",
    "Give me an overview of {topic}, please.",
    "I'm confused about {topic}; what is it about?",
    "Show me an example of {topic}.",
)

_ANSWER_CHARS = 1500  # an answer is the passage's first paragraphs up to about this many characters


def chat_conversations(
    split: str = "train", max_conversations: int | None = None
) -> list[list[dict[str, str]]]:
    """Conversations of two exchanges (user, assistant, user, assistant) from ``split``'s prose and code.

    Documents of the two domains alternate in their fixed order; each exchange asks about one document (its
    first line names the topic) and answers with its first paragraphs (code in a fenced block).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    requests = TRAIN_REQUESTS if split == "train" else HELDOUT_REQUESTS
    prose = load_corpus("prose", split)
    code = load_corpus("code", split)
    documents = [doc for pair in zip(prose, code) for doc in pair]
    conversations = []
    for i in range(0, len(documents) - 1, 2):
        messages = []
        for j, doc in enumerate(documents[i : i + 2]):
            is_code = j % 2 == 1
            topic, answer = _topic_and_answer(doc, is_code)
            messages.append(
                {"role": "user", "content": requests[(i + j) % len(requests)].format(topic=topic)}
            )
            messages.append({"role": "assistant", "content": answer})
        conversations.append(messages)
        if max_conversations is not None and len(conversations) == max_conversations:
            break
    return conversations


def _topic_and_answer(doc: str, is_code: bool) -> tuple[str, str]:
    lines = [line.strip() for line in doc.splitlines() if line.strip()]
    topic = (lines[0] if lines else "this").strip("#\"' :").rstrip(".")
    if len(topic) > 80:
        topic = topic[:80].rsplit(" ", 1)[0]
    answer = ""
    for paragraph in doc.split("\n\n"):
        if answer and len(answer) + len(paragraph) > _ANSWER_CHARS:
            break
        answer += ("\n\n" if answer else "") + paragraph.strip("\n")
    if is_code:
        topic = f"this Python code ({topic})"
        answer = f"Here is how it looks:\n\n```python\n{answer}\n```"
    return topic, answer
