"""The bundled corpus: generated children's stories in English and Chinese, and their evaluator.

    grammar.py    the templates and word classes, compiled for parsing (shared by both)
    english.py    the English words and templates
    chinese.py    the Chinese words and templates
    generate.py   stories from a seed; the corpus file format
    evaluate.py   sentence acceptance, name consistency and gender agreement of any text
    commands.py   `tinyllama-np data generate` and `tinyllama-np data evaluate`
"""

from .commands import format_report
from .evaluate import check_sentence, evaluate_stories, parse_sentence, split_sentences
from .generate import (CORPUS_SEED, CORPUS_STORIES, generate_stories, join_stories,
                       split_stories, write_corpus)
from .grammar import CHINESE, ENGLISH, Grammar
