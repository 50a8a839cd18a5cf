"""Questions about generated stories, for supervised fine-tuning: "story, then a question
about it" as the prompt, the answer as the completion.

The generator knows every story's cast, so the right answer is known exactly:

    ... Mia went to the park. In the park, she saw a small blue bird. ...
    Question: What animal did Mia find?
    Answer:                                                   completion: " bird"

Each story gets a question about its hero and one about what its plot is about (the animal
found, the friend met, the thing lost), in the story's language. Different seeds give
different stories, so a seed other than the corpus's gives held-out stories.
"""

import json
import random

from ..atomic import write_text_atomically
from .generate import ENGLISH_SHARE, compose_story
from .grammar import CHINESE, ENGLISH

# The plots of generate.PLOTS, in order: an animal in trouble, a new friend, a lost thing.
QUESTIONS = {
    "en": {"hero": ("Who is this story about?", ("hero", "name")),
           "gender": ("Is {hero} a boy or a girl?", ("hero", "child")),
           0: ("What animal did {hero} find?", ("pet", "animal")),
           1: ("What is the name of {hero}'s new friend?", ("friend", "name")),
           2: ("What did {hero} lose?", ("thing", "thing"))},
    "zh": {"hero": ("这个故事讲的是谁？", ("hero", "name")),
           "gender": ("{hero}是男孩还是女孩？", ("hero", "child")),
           0: ("{hero}发现了什么动物？", ("pet", "animal")),
           1: ("{hero}的新朋友叫什么名字？", ("friend", "name")),
           2: ("{hero}丢了什么东西？", ("thing", "thing"))},
}
PROMPTS = {"en": "{story}\nQuestion: {question}\nAnswer:", "zh": "{story}\n问题：{question}\n回答："}
ANSWERS = {"en": " {answer}", "zh": "{answer}"}


KINDS = ("hero", "plot", "gender")


def story_questions(n_stories, seed, language="mixed", kinds=("hero", "plot")):
    """Prompt/completion pairs about `n_stories` new stories: a list of dicts with prompt,
    completion, language, kind ("hero", "animal", "friend", "thing", "gender") and story
    (its index). `kinds`: which questions to ask of each story: "hero" (who is it about),
    "plot" (the animal found, the friend met or the thing lost), "gender" (boy or girl)."""
    if language not in ("en", "zh", "mixed"):
        raise ValueError(f"language must be en, zh or mixed, not {language!r}")
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise ValueError(f"kinds must be some of {', '.join(KINDS)}, got {kinds!r}")
    rng = random.Random(seed)
    examples = []
    for index in range(n_stories):
        if language == "mixed":
            lang = "en" if rng.random() < ENGLISH_SHARE else "zh"
        else:
            lang = language
        story, cast, plot = compose_story(rng, ENGLISH if lang == "en" else CHINESE)
        for key in [plot if kind == "plot" else kind for kind in kinds]:
            question, (role, slot) = QUESTIONS[lang][key]
            answer = cast[role][slot]
            if answer not in story:  # a story may skip the sentences that name it
                continue
            examples.append({
                "prompt": PROMPTS[lang].format(story=story,
                                               question=question.format(hero=cast["hero"]["name"])),
                "completion": ANSWERS[lang].format(answer=answer), "language": lang,
                "kind": key if isinstance(key, str) else slot if slot != "name" else "friend",
                "story": index})
    return examples


def write_jsonl(path, records):
    """One JSON object per line (UTF-8, not escaped), written atomically."""
    write_text_atomically(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
