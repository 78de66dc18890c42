"""A user's answer function for the examples' ``--llm`` hook: it answers with the sources
it was given, so the test can see the context reached it (no language model here)."""


def answer(question: str, context: str) -> str:
    first = context.splitlines()[0]
    return f"For {question!r} the first source is {first}"
