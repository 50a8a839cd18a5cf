"""`tinyllama-np data generate` and `tinyllama-np data evaluate`: the bundled story corpus.

    tinyllama-np data generate --out data/stories.txt     the committed corpus, bit for bit
    tinyllama-np data generate --out zh.txt --stories 100 --seed 7 --language zh
    tinyllama-np data evaluate samples.txt                grammar and name scores of a text
"""

import json
import os

from .evaluate import evaluate_stories
from .generate import CORPUS_SEED, CORPUS_STORIES, LANGUAGES, split_stories, write_corpus


def add_data_subcommands(data_subparsers):
    """Add `generate` and `evaluate` to an existing `data` sub-command group."""
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
        f"gender agreement     {report['gender_agreement']:.3f}{by_language('gender_agreement')}",
        f"unfinished endings   {report['unfinished_endings']} (not counted as sentences)",
    ]
    if report["rejected_examples"]:
        lines.append("rejected sentences, for example:")
        lines += [f"  {sentence}" for sentence in report["rejected_examples"]]
    return "\n".join(lines)
