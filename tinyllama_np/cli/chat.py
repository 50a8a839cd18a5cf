"""`tinyllama-np chat`: talk to an instruct model, one turn after another.

    tinyllama-np chat --checkpoint SmolLM2-135M-Instruct.Q4_1.gguf
    tinyllama-np chat --checkpoint model.gguf --system "Answer in French." --temperature 0.7

Type a message and press Enter; the answer streams as it is generated and ends at the chat
format's end-of-turn token. Ctrl-C stops the current answer (the conversation goes on);
Ctrl-D (end of input) or an empty line twice ends the chat. The KV cache is kept across
turns, so each turn runs only the new tokens. A conversation longer than the context drops
its oldest turns, with a note.
"""

import sys

from ..generation.chat import FORMATS
from ..generation.chat_session import ChatSession
from .generate import TextPrinter, load_model_and_tokenizer


def run(args):
    model, tokenizer = load_model_and_tokenizer(args.checkpoint, args.tokenizer)
    session = ChatSession(model, tokenizer, system=args.system, chat_format=args.chat_format,
                          context=args.context, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    out, err = sys.stdout, sys.stderr
    print(f"[chat format {session.chat_format}; Ctrl-C stops an answer, Ctrl-D ends]", file=err)
    empty = 0
    while True:
        try:
            out.write("> ")
            out.flush()
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            out.write("\n")
            return
        if not line:  # end of input
            out.write("\n")
            return
        text = line.strip()
        if not text:
            empty += 1
            if empty == 2:
                return
            continue
        empty = 0
        answer = session.reply(text)
        printer = TextPrinter(tokenizer, [], out)
        try:
            for token in answer:
                printer.add(token)
        except KeyboardInterrupt:
            answer.close()
            printer.show(final=True)
            out.write(" [stopped]")
        printer.show(final=True)
        out.write("\n")
        if session.dropped:
            print(f"[note: the conversation outgrew the context of {session.context} tokens; "
                  f"the {session.dropped} oldest messages were dropped]", file=err)


def add_command(subparsers):
    parser = subparsers.add_parser("chat", help="talk to an instruct model (multi-turn)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="a GGUF file, Hugging Face folder or other checkpoint")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="tokenizer (default: inside or next to the checkpoint)")
    parser.add_argument("--system", metavar="TEXT", help="the system message")
    parser.add_argument("--chat-format", choices=FORMATS,
                        help="override the format recognised from the model's template")
    parser.add_argument("--max-new-tokens", type=int, default=256, metavar="N",
                        help="longest answer (default 256)")
    parser.add_argument("--context", type=int, default=2048, metavar="N",
                        help="tokens of conversation kept (default 2048, at most the model's)")
    parser.add_argument("--temperature", type=float, default=0.0, metavar="T",
                        help="0 (default) is greedy; e.g. 0.7 with --top-p 0.9 to sample")
    parser.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling")
    parser.add_argument("--seed", type=int, help="random seed, for repeatable sampling")
    parser.set_defaults(run=run)
