"""The English story grammar: word classes and sentence templates.

Slots in braces are filled by the generator and checked by the evaluator (see grammar.py):
"{hero.name}" is the hero's name, the same in every sentence of a story; "{spot}" (no role)
is any word of the class `spot`, chosen afresh each time; a trailing digit tells apart two
slots of one class ("{hero.trait2}" is the hero's second trait).

Most sentences about the hero come in twins, one naming the hero and one with a pronoun
("{hero.name} smiled." and "{hero.He} smiled."), so a model may use either. Every word
after "a" starts with a consonant, so "a" never needs to be "an".
"""

LANGUAGE = "en"
SENTENCE_SEPARATOR = " "

# The words that depend on a character's gender. Pronouns always refer to the hero.
CHARACTERS = {
    "girl": {"child": "girl", "he": "she", "He": "She", "his": "her", "His": "Her", "him": "her"},
    "boy": {"child": "boy", "he": "he", "He": "He", "his": "his", "His": "His", "him": "him"},
}

# Names by role and gender. Heroes and friends never share a name, so a friend cannot be
# mistaken for the hero (nor a model's copy of the hero's name for a new friend).
NAMES = {
    "hero": {
        "girl": ("Mia", "Lily", "Emma", "Anna", "Lucy", "Ella", "Nora", "Rosa", "Maya", "Lena",
                 "Nina", "Clara"),
        "boy": ("Tom", "Ben", "Max", "Leo", "Jack", "Finn", "Noah", "Theo", "Owen", "Luke",
                "Adam", "Hugo"),
    },
    "friend": {
        "girl": ("Zoe", "Ruby", "Ivy", "Sara", "Amy", "Kate", "Hana", "Iris"),
        "boy": ("Sam", "Eli", "Omar", "Ravi", "Kai", "Dan", "Tim", "Felix"),
    },
}

WORDS = {
    "trait": ("kind", "brave", "curious", "clever", "gentle", "cheerful", "shy", "funny",
              "quiet", "friendly", "polite", "careful", "helpful", "patient", "playful"),
    "activity": ("sing", "dance", "draw", "paint", "read", "swim", "climb trees", "fly kites",
                 "jump rope", "bake cakes", "plant flowers", "tell stories", "count stars",
                 "whistle"),
    "color": ("red", "blue", "green", "yellow", "pink", "purple", "white", "brown", "golden",
              "silver"),
    "size": ("small", "big", "tiny", "little"),
    "animal": ("bird", "cat", "dog", "rabbit", "duck", "frog", "fox", "mouse", "puppy",
               "kitten", "turtle", "squirrel", "goat", "lamb", "pony", "hedgehog"),
    "thing": ("ball", "kite", "box", "hat", "book", "cup", "key", "shell", "stone", "drum",
              "boat", "balloon", "feather", "basket", "ribbon", "bell"),
    "place": ("park", "garden", "forest", "meadow", "village", "market", "field", "woods",
              "orchard", "valley"),
    "spot": ("tree", "bush", "bench", "rock", "fence", "bridge"),
    "family": ("mom", "dad", "grandma", "grandpa", "sister", "brother"),
    "home": ("house", "cottage", "cabin"),
    "time": ("day", "morning", "afternoon", "evening", "sunny day", "windy day",
             "spring morning", "summer day"),
    "food": ("cookies", "apples", "berries", "grapes", "cherries", "carrots", "nuts", "plums"),
    "build": ("castle", "tower", "house", "bridge", "boat"),
    "material": ("sand", "sticks", "leaves", "stones"),
    "feeling": ("happy", "proud", "tired", "sleepy", "calm", "thankful"),
}

# What troubles the animal, and how the hero helps: the i-th problem goes with the i-th help.
PET_TROUBLES = (
    ("hungry", "gave it some bread"),
    ("lost", "helped it find its way home"),
    ("cold", "wrapped it in a warm scarf"),
    ("stuck", "gently pulled it free"),
    ("hurt", "put a soft bandage on its leg"),
    ("lonely", "played with it all afternoon"),
    ("scared", "talked to it in a soft voice"),
    ("thirsty", "brought it some fresh water"),
)

# The parts of a story (generate.py puts them in order) and the sentences each part can use.
TEMPLATES = {
    "intro": (
        "Once upon a time, there was a little {hero.child} named {hero.name}.",
        "Once upon a time, there was a {hero.trait} {hero.child} named {hero.name}.",
        "There was once a {hero.child} named {hero.name} who lived in a {size} {home}.",
        "Long ago, in a quiet village, there lived a {hero.child} named {hero.name}.",
        "In a little {home} near the {place.place}, there lived a {hero.child} named {hero.name}.",
    ),
    "trait": (
        "{hero.name} was {hero.trait} and {hero.trait2}.",
        "{hero.He} was {hero.trait} and {hero.trait2}.",
        "{hero.He} was very {hero.trait}.",
        "{hero.name} was very {hero.trait}.",
        "{hero.He} liked to {hero.activity}.",
        "{hero.name} liked to {hero.activity}.",
        "Every day, {hero.name} liked to {hero.activity} with {hero.his} {family}.",
        "Everyone said that {hero.name} was very {hero.trait2}.",
    ),
    "start": (
        "One {time}, {hero.name} went to the {place.place}.",
        "One {time}, {hero.name} walked to the {place.place} with {hero.his} {family}.",
        "One {time}, the weather was fine, so {hero.name} went to play in the {place.place}.",
        "One {time}, {hero.name} and {hero.his} {family} went for a walk in the {place.place}.",
    ),
    "find_pet": (
        "In the {place.place}, {hero.he} saw a {pet.size} {pet.color} {pet.animal}.",
        "In the {place.place}, {hero.name} saw a {pet.size} {pet.color} {pet.animal}.",
        "There, {hero.name} found a {pet.size} {pet.animal} under a {spot}.",
        "Near a {spot}, {hero.name} heard a {pet.size} {pet.animal}.",
        "Suddenly, {hero.he} saw a {pet.color} {pet.animal} next to a {spot}.",
    ),
    "pet_trouble": (
        "The {pet.animal} was {pet.problem}.",
        "{hero.name} saw that the {pet.animal} was {pet.problem}.",
        "{hero.He} saw that the {pet.animal} was {pet.problem}.",
        "The little {pet.animal} looked at {hero.name}, because it was {pet.problem}.",
    ),
    "help_pet": (
        "{hero.name} {pet.help}.",
        "{hero.He} {pet.help}.",
        "{hero.name} wanted to help the {pet.animal}, so {hero.he} {pet.help}.",
        "Quickly, {hero.he} {pet.help}.",
        "Quickly, {hero.name} {pet.help}.",
    ),
    "pet_better": (
        "Soon the {pet.animal} felt much better.",
        "The {pet.animal} was happy again.",
        "The {pet.animal} jumped with joy and thanked {hero.name}.",
    ),
    "pet_end": (
        "From that day on, {hero.name} and the {pet.animal} were best friends.",
        "Every {time}, the {pet.animal} came back to visit {hero.name}.",
    ),
    "meet": (
        "In the {place.place}, {hero.he} met a {friend.child} named {friend.name}.",
        "In the {place.place}, {hero.name} met a {friend.child} named {friend.name}.",
        "There, {hero.name} met a {friend.trait} {friend.child} named {friend.name}.",
        "In the {place.place}, a {friend.child} named {friend.name} waved at {hero.him}.",
    ),
    "friend_trait": (
        "{friend.name} was {friend.trait} and liked to {friend.activity}.",
        "{friend.name} had a {thing.color} {thing.thing}.",
        "{friend.name} wanted to be friends with {hero.name}.",
    ),
    "play": (
        "{hero.name} and {friend.name} played together in the {place.place}.",
        "{friend.name} showed {hero.name} how to {friend.activity}.",
        "Then {hero.name} taught {friend.name} how to {hero.activity}.",
        "The two friends built a {size} {build} out of {material}.",
        "{hero.name} and {friend.name} shared some {food}.",
    ),
    "friend_end": (
        "When the sun went down, {hero.name} said goodbye to {friend.name}.",
        "{hero.name} and {friend.name} became good friends.",
        "{friend.name} promised to come back and play the next day.",
    ),
    "has_thing": (
        "{hero.name} had a {thing.size} {thing.color} {thing.thing}.",
        "{hero.He} had a {thing.size} {thing.color} {thing.thing}.",
        "{hero.His} {family} gave {hero.him} a {thing.color} {thing.thing}.",
    ),
    # From here on every sentence names the thing with its colour, so a model must carry the
    # colour from "has_thing" to the end, as it carries the hero's name.
    "likes_thing": (
        "{hero.He} took the {thing.color} {thing.thing} everywhere.",
        "{hero.name} took the {thing.color} {thing.thing} everywhere.",
        "{hero.name} loved the {thing.color} {thing.thing} very much.",
        "{hero.He} loved the {thing.color} {thing.thing} very much.",
    ),
    "lose_thing": (
        "In the {place.place}, {hero.name} lost {hero.his} {thing.color} {thing.thing}.",
        "But in the {place.place}, the wind blew {hero.his} {thing.color} {thing.thing} away.",
        "While {hero.he} was playing in the {place.place}, the {thing.color} {thing.thing} went missing.",
    ),
    "sad": (
        "{hero.name} was very sad.",
        "{hero.He} was very sad.",
        "{hero.He} did not know what to do.",
        "{hero.name} did not know what to do.",
    ),
    "search": (
        "{hero.He} looked under a {spot}, but the {thing.color} {thing.thing} was not there.",
        "{hero.name} looked under a {spot}, but the {thing.color} {thing.thing} was not there.",
        "{hero.name} looked behind every {spot} in the {place.place}.",
        "{hero.He} looked behind every {spot} in the {place.place}.",
        "{hero.He} asked a {animal} for help.",
        "{hero.name} asked a {animal} for help.",
    ),
    "find_thing": (
        "At last, {hero.he} found the {thing.color} {thing.thing} under a {spot}.",
        "At last, {hero.name} found the {thing.color} {thing.thing} under a {spot}.",
        "Then a friendly {animal} brought the {thing.color} {thing.thing} back to {hero.him}.",
        "Finally, {hero.name} saw the {thing.color} {thing.thing} behind a {spot}.",
    ),
    "thing_end": (
        "{hero.name} held the {thing.color} {thing.thing} tight and smiled.",
        "{hero.He} held the {thing.color} {thing.thing} tight and smiled.",
        "{hero.name} was so happy to have {hero.his} {thing.color} {thing.thing} back.",
        "{hero.He} was so happy to have {hero.his} {thing.color} {thing.thing} back.",
        "From then on, {hero.he} took good care of the {thing.color} {thing.thing}.",
    ),
    "ending": (
        "That night, {hero.name} went to bed with a big smile.",
        "{hero.name} smiled.",
        "{hero.He} smiled.",
        "It was the best day ever for {hero.name}!",
        "{hero.name} could not wait for the next day.",
        "{hero.He} could not wait for the next day.",
        "At the end of the day, {hero.name} went home feeling {feeling}.",
    ),
}
