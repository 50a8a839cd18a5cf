"""Score stories (usually a model's) against the story grammar.

Sentences. A sentence is text up to and including . ! ? 。 ！ or ？. Text after the last of
these is an unfinished ending (generation stopped by a token limit): it is not counted as a
sentence, but the number of stories with one is reported. A sentence containing a Chinese
character is checked against the Chinese grammar, any other against the English one.

Sentence acceptance: the share of sentences that some template of the grammar produces, with
every slot holding a word of its class (grammar.py). A wrong-class word, a misspelt word, a
missing or extra word, or a mix of languages makes the sentence rejected.

Name consistency: the share of stories in which
  1. the first sentence introduces the hero (an accepted sentence with a {hero.child} and
     {hero.name} slot, such as "... a little girl named Mia."),
  2. every later accepted sentence has a reading in which each name slot holds the name of
     that role: the hero's slots hold the hero's name, the friend's slots the friend's name.
     A new character may appear only in a sentence that introduces it ("... met a boy named
     Sam."); the hero is introduced once,
  3. a rejected sentence mentions only names of characters already introduced, and
  4. the hero is named again after the first sentence.
So "Mia ... Tom smiled." fails when Tom was never introduced. Heroes and friends have
separate names (grammar.py), so the friend's name in the hero's place ("Sam smiled." when Sam
is the friend) is a grammar error instead: that sentence is rejected, and the story's names
stay consistent, since Sam was introduced.

Entity consistency: a story has one hero, at most one friend, at most one animal it is
about (the {pet.*} slots) and at most one object (the {thing.*} slots). Each is checked on
its own, and a story passes a check when every mention of that entity holds the same words,
the animal's and the object's colour and size included:
  hero    the name consistency above,
  friend  every {friend.name} slot holds one name ("... met a boy named Sam. ... Eli
          smiled." fails); the friend's traits may vary (a kind girl can be shy too),
  animal  every {pet.*} slot holds one word: one animal ("a little frog ... The puppy was
          happy again" fails), one colour and one size ("a yellow goat ... the blue goat"
          fails); free {animal} slots ("asked a cat for help") are not the story's animal
          and may vary,
  object  every {thing.*} slot holds one word: one thing ("her red kite ... found the ball"
          fails), one colour ("a big red shell ... the blue shell" fails), one size,
and, for each of the three, a sentence the grammar rejects mentions no word of its class
(friend name, animal, thing) other than the story's own: such a sentence has no reading to
tell a free slot from the entity, so any other animal or thing in it counts as a change.
(Colours and sizes are not looked for in rejected sentences: several entities share those
words, and the sentence already counts against the grammar.)
When a sentence has several readings, the first that agrees with the words seen so far is
used. "all_entities_consistent" is the share of stories that pass all four checks.

Gender agreement: the share of stories whose hero is introduced, whose every introduced
character has a name of the gender of the word introducing them (girl/boy, 女孩/男孩), and
whose pronouns (she/her, he/his/him; 她, 他) all match the hero's gender (in these stories
pronouns only ever refer to the hero).

Shares of nothing (no stories, no sentences) are 0.0.
"""

import re
from dataclasses import dataclass

from .grammar import CHINESE, ENGLISH, GRAMMARS

SENTENCE = re.compile(r"[^.!?。！？]*[.!?。！？]")
CHINESE_CHARACTER = re.compile(r"[\u3400-\u9fff]")


def ascii_word_or_chinese(words):
    """A regex finding any of `words`: English ones as whole words, Chinese ones anywhere."""
    alternatives = [f"(?<![A-Za-z]){re.escape(w)}(?![A-Za-z])" if w.isascii() else re.escape(w)
                    for w in words]
    return re.compile("|".join(alternatives))


def gender_of_words():
    """{word: "girl" or "boy"} for the gendered words of both languages: names, the words
    for girl and boy (girl, 女孩...), and pronouns (she, her, 她...)."""
    genders = {}
    for grammar in GRAMMARS.values():
        for gender, forms in grammar.characters.items():
            genders.update({word: gender for word in forms.values()})
        for names_by_gender in grammar.names.values():
            for gender, names in names_by_gender.items():
                genders.update({name: gender for name in names})
    return genders


GENDER_OF = gender_of_words()
NAMES = ascii_word_or_chinese([name for grammar in GRAMMARS.values()
                               for role in grammar.names for name in grammar.words(f"{role}_name")])
PRONOUNS = ascii_word_or_chinese(sorted({word for grammar in GRAMMARS.values()
                                         for forms in grammar.characters.values()
                                         for word_class, word in forms.items()
                                         if word_class != "child"}))


def split_sentences(story):
    """(complete sentences, unfinished ending or "")."""
    sentences, end = [], 0
    for match in SENTENCE.finditer(story):
        sentences.append(match.group().strip())
        end = match.end()
    return sentences, story[end:].strip()


def grammar_for(text):
    return CHINESE if CHINESE_CHARACTER.search(text) else ENGLISH


def parse_sentence(sentence):
    """Every template reading of one sentence (no surrounding spaces); [] if rejected."""
    return grammar_for(sentence).parse(sentence)


def check_sentence(sentence):
    """Is this one sentence (no surrounding spaces) in the grammar?"""
    return grammar_for(sentence).accepts(sentence)


def story_language(story):
    return grammar_for(story).language


def named_roles(parse):
    """[(role, name)] for the name slots of a reading: [("hero", "Mia"), ("friend", "Sam")]."""
    return [(slot.split(".")[0], word) for slot, word in parse.slots.items()
            if slot.endswith(".name")]


def introductions(parse):
    """[(role, name, girl/boy word)] for the characters this reading introduces."""
    return [(role, name, parse.slots[f"{role}.child"]) for role, name in named_roles(parse)
            if f"{role}.child" in parse.slots]


def introduced_hero(parses):
    """The hero's (name, girl/boy word) if a reading of a sentence introduces the hero."""
    for parse in parses:
        for role, name, child in introductions(parse):
            if role == "hero":
                return name, child
    return None


def fits_cast(parse, cast):
    """Does each name slot of this reading hold a name its role already has, or introduce
    a new character (a friend: the hero is introduced once)?"""
    for role, name in named_roles(parse):
        if name in cast.get(role, ()):
            continue
        if role == "hero" or f"{role}.child" not in parse.slots:
            return False
    return True


def names_are_consistent(sentences, parses):
    """Name consistency of one story (module docstring): sentences and their readings."""
    hero = introduced_hero(parses[0]) if sentences else None
    if hero is None:
        return False
    cast = {"hero": {hero[0]}}  # role -> the names of that role's characters
    for sentence, readings in zip(sentences[1:], parses[1:]):
        if readings:
            reading = next((parse for parse in readings if fits_cast(parse, cast)), None)
            if reading is None:
                return False
            for role, name in named_roles(reading):
                cast.setdefault(role, set()).add(name)
        elif not set(NAMES.findall(sentence)) <= set().union(*cast.values()):
            return False
    return any(hero[0] in NAMES.findall(sentence) for sentence in sentences[1:])


# The entities of a story and the slot that names each one (the hero is checked by
# names_are_consistent, which also requires the introduction).
ENTITY_SLOTS = {"friend": "friend.name", "animal": "pet.animal", "object": "thing.thing"}
ENTITIES = ("hero",) + tuple(ENTITY_SLOTS)
# The animal's and the object's colour and size are part of what they are ("a red kite ...
# the blue kite" is another kite), so every slot of their roles is checked. A friend's
# traits may vary (a kind girl can be shy too): only the friend's name is.
ENTITY_OF_SLOT = {slot: entity for entity, slot in ENTITY_SLOTS.items()}
ENTITY_OF_ROLE = {ENTITY_SLOTS[entity].split(".")[0]: entity for entity in ("animal", "object")}
# The words that can name each entity, to find them in sentences the grammar rejects
# (longest first, so a Chinese word is not found inside a longer one).
ENTITY_WORDS = {entity: ascii_word_or_chinese(sorted(
    {word for grammar in GRAMMARS.values() for word in grammar.words(word_class)},
    key=len, reverse=True))
    for entity, word_class in (("friend", "friend_name"), ("animal", "animal"), ("object", "thing"))}


def entity_of(slot):
    """The entity a slot names or describes ("pet.color" -> "animal"), or None."""
    return ENTITY_OF_SLOT.get(slot, ENTITY_OF_ROLE.get(slot.split(".")[0]))


def entity_words(parse):
    """{slot: word} for the entity slots of one reading: {"pet.animal": "frog",
    "pet.color": "green"}."""
    return {slot: word for slot, word in parse.slots.items() if entity_of(slot)}


def entities_are_consistent(sentences, parses):
    """{entity: passes} for one story (module docstring): sentences and their readings."""
    seen = {}  # slot -> the first word that filled it
    broken = set()
    for readings in parses:
        if not readings:
            continue
        agreeing = [parse for parse in readings
                    if all(seen.get(slot, word) == word
                           for slot, word in entity_words(parse).items())]
        for slot, word in entity_words(agreeing[0] if agreeing else readings[0]).items():
            if seen.setdefault(slot, word) != word:
                broken.add(entity_of(slot))
    for sentence, readings in zip(sentences, parses):
        for entity, words in ENTITY_WORDS.items():
            own = seen.get(ENTITY_SLOTS[entity])
            if not readings and any(word != own for word in words.findall(sentence)):
                broken.add(entity)
    checks = {"hero": names_are_consistent(sentences, parses)}
    checks.update({entity: entity not in broken for entity in ENTITY_SLOTS})
    return checks


def genders_agree(sentences, parses):
    """Gender agreement of one story (module docstring): sentences and their readings."""
    hero = introduced_hero(parses[0]) if sentences else None
    if hero is None:
        return False
    for readings in parses:
        if readings and not any(all(GENDER_OF[name] == GENDER_OF[child]
                                    for _, name, child in introductions(parse))
                                for parse in readings):
            return False
    hero_gender = GENDER_OF[hero[1]]
    return all(GENDER_OF[pronoun] == hero_gender
               for sentence in sentences for pronoun in PRONOUNS.findall(sentence))


@dataclass
class StoryScore:
    language: str
    sentences: int
    accepted: int
    unfinished: bool
    name_consistent: bool
    entities: dict  # entity -> passes its check
    genders_agree: bool
    rejected: list


def score_story(story):
    sentences, unfinished = split_sentences(story)
    parses = [parse_sentence(sentence) for sentence in sentences]
    entities = entities_are_consistent(sentences, parses)
    return StoryScore(
        language=story_language(story),
        sentences=len(sentences),
        accepted=sum(1 for readings in parses if readings),
        unfinished=bool(unfinished),
        name_consistent=entities["hero"],
        entities=entities,
        genders_agree=genders_agree(sentences, parses),
        rejected=[sentence for sentence, readings in zip(sentences, parses) if not readings],
    )


def share(part, whole):
    return part / whole if whole else 0.0


def summarize(scores):
    sentences = sum(score.sentences for score in scores)
    accepted = sum(score.accepted for score in scores)
    consistent = sum(score.name_consistent for score in scores)
    agreeing = sum(score.genders_agree for score in scores)
    every = sum(all(score.entities.values()) for score in scores)
    return {
        "stories": len(scores),
        "sentences": sentences,
        "accepted_sentences": accepted,
        "sentence_acceptance": share(accepted, sentences),
        "name_consistent_stories": consistent,
        "name_consistency": share(consistent, len(scores)),
        "entity_consistency": {entity: share(sum(score.entities[entity] for score in scores),
                                             len(scores)) for entity in ENTITIES},
        "all_entities_consistent_stories": every,
        "all_entities_consistent": share(every, len(scores)),
        "gender_agreement": share(agreeing, len(scores)),
        "unfinished_endings": sum(score.unfinished for score in scores),
    }


def evaluate_stories(stories, examples=5):
    """Scores for a list of stories (see the module docstring for the definitions).

    Returns the summary of all stories, "by_language" with the same summary for "en" and
    "zh", and "rejected_examples": the first `examples` rejected sentences.
    """
    scores = [score_story(story) for story in stories]
    report = summarize(scores)
    report["by_language"] = {language: summarize([s for s in scores if s.language == language])
                             for language in GRAMMARS}
    report["rejected_examples"] = [sentence for score in scores
                                   for sentence in score.rejected][:examples]
    return report


def format_report(report):
    """The scores of evaluate_stories as a few lines of text."""
    def by_language(key):
        parts = [f"{language} {summary[key]:.3f}" for language, summary in
                 report["by_language"].items() if summary["stories"]]
        return f"; {', '.join(parts)}" if len(parts) > 1 else ""

    counts = ", ".join(f"{language} {summary['stories']}"
                       for language, summary in report["by_language"].items())
    lines = [
        f"stories              {report['stories']} ({counts})",
        f"sentence acceptance  {report['sentence_acceptance']:.3f} ({report['accepted_sentences']} "
        f"of {report['sentences']} sentences{by_language('sentence_acceptance')})",
        f"name consistency     {report['name_consistency']:.3f} "
        f"({report['name_consistent_stories']} of {report['stories']} stories"
        f"{by_language('name_consistency')})",
        "entity consistency   " + ", ".join(f"{entity} {value:.3f}" for entity, value
                                            in report["entity_consistency"].items()),
        f"all entities         {report['all_entities_consistent']:.3f} "
        f"({report['all_entities_consistent_stories']} of {report['stories']} stories"
        f"{by_language('all_entities_consistent')})",
        f"gender agreement     {report['gender_agreement']:.3f}{by_language('gender_agreement')}",
        f"unfinished endings   {report['unfinished_endings']} (not counted as sentences)",
    ]
    if report["rejected_examples"]:
        lines.append("rejected sentences, for example:")
        lines += [f"  {sentence}" for sentence in report["rejected_examples"]]
    return "\n".join(lines)
