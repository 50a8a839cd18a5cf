"""`tinyllama-np data generate|evaluate|fetch`: the bundled story corpus and public corpora.

    tinyllama-np data generate --out data/stories.txt     the committed corpus, bit for bit
    tinyllama-np data generate --out zh.txt --stories 100 --seed 7 --language zh
    tinyllama-np data evaluate samples.txt                grammar and name scores of a text
    tinyllama-np data fetch tinyshakespeare               download, verify and prepare a corpus
    tinyllama-np data qa --out qa.jsonl --stories 2000 --seed 101
                                                          questions about new stories (SFT data)
"""

import json
import os
from pathlib import Path

from ..stories import evaluate_stories, format_report, split_stories, write_corpus
from ..stories.generate import CORPUS_SEED, CORPUS_STORIES, LANGUAGES
from ..stories.qa import story_questions, write_jsonl
from ..training import fetch


def add_command(subparsers):
    data = subparsers.add_parser("data", help="corpora: generate, evaluate, fetch",
                                 description="The bundled story corpus and public corpora.")
    data_subparsers = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    generate = data_subparsers.add_parser(
        "generate", help="write generated children's stories to a file",
        description="Write generated stories, one per line with a blank line between them. "
                    "The defaults give the committed data/stories.txt bit for bit.")
    generate.add_argument("--out", required=True, help="the file to write")
    generate.add_argument("--stories", type=int, default=CORPUS_STORIES, help="how many stories")
    generate.add_argument("--seed", type=int, default=CORPUS_SEED, help="the random seed")
    generate.add_argument("--language", choices=LANGUAGES, default="mixed",
                          help="English, Chinese or both (default)")
    generate.set_defaults(run=run_generate)

    evaluate = data_subparsers.add_parser(
        "evaluate", help="score stories: grammar acceptance and name consistency",
        description="Score a text of stories separated by blank lines against the story grammar.")
    evaluate.add_argument("file", help="a UTF-8 text file, stories separated by blank lines")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    evaluate.set_defaults(run=run_evaluate)

    fetch_parser = data_subparsers.add_parser(
        "fetch", help="download and prepare a public corpus",
        description=fetch.__doc__.split("\n\n")[0])
    fetch_parser.add_argument("name", choices=list(fetch.SOURCES))
    fetch_parser.add_argument("--url", help="download from this address instead (a mirror)")
    fetch_parser.add_argument("--cache", type=Path, help="cache folder (default "
                              "$TINYLLAMA_NP_CACHE or ~/.cache/tinyllama_np)")
    fetch_parser.add_argument("--vocab-size", type=int, default=2048,
                              help="tokenizer vocabulary size")
    fetch_parser.set_defaults(run=run_fetch)

    qa = data_subparsers.add_parser(
        "qa", help="questions about generated stories, as prompt/completion JSONL",
        description="Write 'story, then a question about it' prompts with the answer as the "
                    "completion (for `tinyllama-np finetune`). Use a seed other than the "
                    f"corpus's ({CORPUS_SEED}) for stories the model has not seen.")
    qa.add_argument("--out", required=True, help="the JSONL file to write")
    qa.add_argument("--stories", type=int, default=2000, help="how many stories")
    qa.add_argument("--seed", type=int, default=101, help="the random seed")
    qa.add_argument("--language", choices=LANGUAGES, default="mixed")
    qa.set_defaults(run=run_qa)


def run_qa(args):
    if args.stories < 1:
        raise ValueError(f"--stories must be at least 1, got {args.stories}")
    if args.seed == CORPUS_SEED:
        print(f"note: seed {CORPUS_SEED} is the corpus's: these stories start like its own")
    records = story_questions(args.stories, args.seed, args.language)
    write_jsonl(args.out, records)
    print(f"wrote {len(records)} questions about {args.stories} stories to {args.out}")


def run_generate(args):
    if args.stories < 1:
        raise ValueError(f"--stories must be at least 1, got {args.stories}")
    digest = write_corpus(args.out, args.stories, args.seed, args.language)
    size = os.path.getsize(args.out)
    print(f"wrote {args.stories} stories ({size:,} bytes, sha256 {digest}) to {args.out}")


def run_evaluate(args):
    with open(args.file, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{args.file} is not UTF-8 text ({error.reason} at byte "
                         f"{error.start})") from None
    stories = split_stories(text)
    if not stories:
        raise ValueError(f"{args.file} has no stories")
    report = evaluate_stories(stories)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report))


def run_fetch(args):
    fetch.fetch(args.name, url=args.url, root=args.cache)
    fetch.prepare(args.name, vocab_size=args.vocab_size, root=args.cache)
