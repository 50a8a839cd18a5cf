"""Generate the bundled corpus: short children's stories in English and Chinese.

A story picks a cast (a hero, a friend, an animal, a thing, a place), a plot (a list of story
parts), and for each part one sentence template of the grammar, filled from the cast:

    Once upon a time, there was a little girl named Mia. Mia was kind and curious. One
    morning, Mia went to the park. In the park, she saw a small blue bird. ...

So a model that learns these stories must carry the hero's name, gender and objects from the
first sentences to the last: a job for attention.

The corpus file holds one story per line, with a blank line between stories (UTF-8).
Everything random comes from one `random.Random(seed)` and only its `random()` method, which
Python promises gives the same numbers for the same seed in every version, so a seed always
gives the same file.
"""

import hashlib
import random
import re

from ..atomic import atomic_write
from .grammar import CHINESE, ENGLISH, GRAMMARS, SLOT, parse_slot

# The committed corpus (data/stories.txt): `write_corpus(path)` with these defaults.
CORPUS_STORIES = 8000
CORPUS_SEED = 1
ENGLISH_SHARE = 0.65  # of the stories in a "mixed" corpus; the rest are Chinese

LANGUAGES = ("en", "zh", "mixed")

# A story is a list of parts. A part ending in "?" appears in half of the stories. The plots:
# an animal in trouble, a new friend, a lost thing.
PLOTS = (
    ("intro", "trait", "trait?", "start", "find_pet", "pet_trouble", "help_pet", "pet_better",
     "pet_end?", "ending", "ending?"),
    ("intro", "trait", "trait?", "start", "meet", "friend_trait", "play", "play?", "friend_end",
     "ending", "ending?"),
    ("intro", "trait", "has_thing", "likes_thing?", "start", "lose_thing", "sad?", "search",
     "find_thing", "thing_end", "ending?"),
)


def pick(rng, options):
    """One of `options`, chosen with rng.random() alone (reproducible in every Python)."""
    return options[int(rng.random() * len(options))]


def new_character(rng, grammar, role):
    gender = pick(rng, ("girl", "boy"))
    character = dict(grammar.characters[gender])  # child, pronouns
    character["name"] = pick(rng, grammar.names[role][gender])
    character["trait"] = pick(rng, grammar.words("trait"))
    character["trait2"] = pick(rng, [t for t in grammar.words("trait") if t != character["trait"]])
    character["activity"] = pick(rng, grammar.words("activity"))
    return character


def new_cast(rng, grammar):
    """Who and what the story is about: role -> {slot key -> word}."""
    hero = new_character(rng, grammar, "hero")
    friend = new_character(rng, grammar, "friend")
    problem, help_ = pick(rng, grammar.pet_troubles)
    pet = {"animal": pick(rng, grammar.words("animal")), "color": pick(rng, grammar.words("color")),
           "size": pick(rng, grammar.words("size")), "problem": problem, "help": help_}
    thing = {"thing": pick(rng, grammar.words("thing")), "color": pick(rng, grammar.words("color")),
             "size": pick(rng, grammar.words("size"))}
    place = {"place": pick(rng, grammar.words("place"))}
    return {"hero": hero, "friend": friend, "pet": pet, "thing": thing, "place": place}


def fill(template, cast, rng, grammar):
    """Replace each slot: a role's slot from the cast, a free slot with a fresh random word."""
    def word_for(match):
        role, key, word_class = parse_slot(match)
        return cast[role][key] if role else pick(rng, grammar.words(word_class))
    return SLOT.sub(word_for, template)


def without_pronoun(template):
    """The template with the hero's name where it has the hero's pronoun as subject, so that
    "{hero.He} smiled." and its twin "{hero.name} smiled." count as one sentence."""
    return re.sub(r"\{hero\.[Hh]e\}", "{hero.name}", template)


def generate_story(rng, grammar):
    return compose_story(rng, grammar)[0]


def compose_story(rng, grammar):
    """(text, cast, plot index): the story and what it is about (for questions on it)."""
    cast = new_cast(rng, grammar)
    used = set()  # each sentence (or its twin) at most once per story
    sentences = []
    plot = int(rng.random() * len(PLOTS))  # what pick(rng, PLOTS) does, keeping the index
    for part in PLOTS[plot]:
        if part.endswith("?"):
            if rng.random() < 0.5:
                continue
            part = part[:-1]
        template = pick(rng, [t for t in grammar.templates[part] if without_pronoun(t) not in used])
        used.add(without_pronoun(template))
        sentences.append(fill(template, cast, rng, grammar))
    return grammar.sentence_separator.join(sentences), cast, plot


def generate_stories(n, seed, language="mixed"):
    """`n` stories in "en", "zh" or "mixed" (ENGLISH_SHARE English), the same for one seed."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    if n < 0:
        raise ValueError(f"the number of stories must not be negative, got {n}")
    rng = random.Random(seed)
    stories = []
    for _ in range(n):
        if language == "mixed":
            grammar = ENGLISH if rng.random() < ENGLISH_SHARE else CHINESE
        else:
            grammar = GRAMMARS[language]
        stories.append(generate_story(rng, grammar))
    return stories


def join_stories(stories):
    """The corpus text: one story per line, a blank line between stories."""
    return "\n\n".join(stories) + "\n"


def split_stories(text):
    """The stories of a corpus text (or of any text with blank lines between stories)."""
    return [story.strip() for story in re.split(r"\n\s*\n", text) if story.strip()]


def write_corpus(path, n=CORPUS_STORIES, seed=CORPUS_SEED, language="mixed"):
    """Write `n` generated stories to `path` (UTF-8); returns the file's sha256 in hex.

    The file is written next to `path` first and then renamed, so it is never half written.
    """
    if n < 1:
        raise ValueError(f"the number of stories must be at least 1, got {n}")
    data = join_stories(generate_stories(n, seed, language)).encode("utf-8")
    with atomic_write(path) as file:
        file.write(data)
    return hashlib.sha256(data).hexdigest()
