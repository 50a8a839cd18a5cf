"""The story grammar, shared by the generator and the evaluator.

A grammar is a set of sentence templates with slots, and the word classes that fill them:

    "{hero.name} was {hero.trait} and {hero.trait2}."

A slot `{role.word}` belongs to a story role (hero, friend, pet, thing, place): the generator
fills it from the story's cast, so the hero has one name and one set of traits all story long.
A slot `{word}` without a role is any word of its class, chosen afresh each time. The word
class is the slot's word without a trailing digit: `trait2` is a second word of class `trait`.
Names are the one exception: a role's name is a word of that role's names, so `{friend.name}`
is a word of class `friend_name` (heroes and friends have separate names).

The evaluator compiles every template to a regular expression in which a slot matches exactly
the words of its class, so a sentence is accepted only if some template produces it.
"""

import re
from dataclasses import dataclass

from . import chinese, english

SLOT = re.compile(r"\{(?:([a-z]+)\.)?([A-Za-z_]+)(\d*)\}")


@dataclass(frozen=True)
class Parse:
    """One way a template produces a sentence: which template, and the word in each slot.

    `slots` maps a slot as written in the template ("hero.name", "spot") to its word.
    """
    part: str
    template: str
    slots: dict


class Grammar:
    """One language's templates and word classes, with the templates compiled for parsing."""

    def __init__(self, language_module):
        self.language = language_module.LANGUAGE
        self.sentence_separator = language_module.SENTENCE_SEPARATOR
        self.characters = language_module.CHARACTERS
        self.names = language_module.NAMES
        self.pet_troubles = language_module.PET_TROUBLES
        self.templates = language_module.TEMPLATES
        self.word_classes = build_word_classes(language_module)
        self.compiled = [(part, template, compile_template(template, self.word_classes))
                         for part, templates in self.templates.items() for template in templates]

    def words(self, word_class):
        return self.word_classes[word_class]

    def parse(self, sentence):
        """A reading of `sentence` for each template that produces it ([]: not in the grammar)."""
        parses = []
        for part, template, (pattern, slot_of_group) in self.compiled:
            match = pattern.fullmatch(sentence)
            if match:
                slots = {slot: match.group(group) for group, slot in slot_of_group.items()}
                parses.append(Parse(part, template, slots))
        return parses

    def accepts(self, sentence):
        return bool(self.parse(sentence))


def build_word_classes(language_module):
    """Word class -> tuple of words. Gendered classes (child, he, ...) hold both genders."""
    classes = dict(language_module.WORDS)
    for forms in language_module.CHARACTERS.values():
        for word_class, word in forms.items():
            classes[word_class] = classes.get(word_class, ()) + (word,)
    for role, names_by_gender in language_module.NAMES.items():
        classes[f"{role}_name"] = sum(names_by_gender.values(), ())
    classes["problem"] = tuple(problem for problem, _ in language_module.PET_TROUBLES)
    classes["help"] = tuple(help_ for _, help_ in language_module.PET_TROUBLES)
    return classes


def parse_slot(match):
    """A SLOT match -> (role or None, key in the role's dict such as "trait2", word class)."""
    role, word, number = match.groups()
    word_class = f"{role}_name" if role and word == "name" else word
    return role, word + number, word_class


def compile_template(template, word_classes):
    """A template -> (regular expression, {group name: slot as written}).

    Literal text must match exactly; a slot matches any word of its class. A role slot used
    twice in one template ("{hero.he}的{family}送给{hero.he}") must be the same word twice.
    """
    pieces, slot_of_group = [], {}
    position = 0
    for match in SLOT.finditer(template):
        pieces.append(re.escape(template[position:match.start()]))
        role, key, word_class = parse_slot(match)
        group = f"{role}_{key}" if role else key
        if group in slot_of_group:
            if role is None:
                raise ValueError(f"template {template!r} repeats the free slot {{{key}}}: "
                                 f"number the second one ({{{key}2}})")
            pieces.append(f"(?P={group})")
        else:
            if word_class not in word_classes:
                raise ValueError(f"template {template!r} uses the unknown word class "
                                 f"{word_class!r}")
            words = "|".join(map(re.escape, word_classes[word_class]))
            pieces.append(f"(?P<{group}>{words})")
            slot_of_group[group] = match.group(0)[1:-1]
        position = match.end()
    pieces.append(re.escape(template[position:]))
    return re.compile("".join(pieces)), slot_of_group


ENGLISH = Grammar(english)
CHINESE = Grammar(chinese)
GRAMMARS = {"en": ENGLISH, "zh": CHINESE}
