"""The bundled corpus: generated children's stories in English and Chinese, and their evaluator.

    grammar.py    the templates and word classes, compiled for parsing (shared by both)
    english.py    the English words and templates
    chinese.py    the Chinese words and templates
    generate.py   stories from a seed; the corpus file format
    evaluate.py   sentence acceptance, name consistency and gender agreement of any text

The commands `tinyllama-np data generate` and `data evaluate` are in cli/data.py.
"""

from .evaluate import (check_sentence, evaluate_stories, format_report, parse_sentence,
                       split_sentences)
from .generate import (CORPUS_SEED, CORPUS_STORIES, generate_stories, join_stories,
                       split_stories, write_corpus)
from .grammar import CHINESE, ENGLISH, Grammar
