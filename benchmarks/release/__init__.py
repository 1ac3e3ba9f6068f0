"""Release benchmark: a trained zip2zip model against its base model (SmolLM2-135M-Instruct), in one run.

Regenerates ``benchmarks/RESULTS.md`` and, beside it, ``results/release/`` (plots, the raw
``results.json`` and the multiple-choice items ``next_line.jsonl``). Everything is measured side by side in
the same process, on the same held-out text, with the same thread count:

1. **Bits per byte and input compression per held-out domain** (code, prose, math, multilingual of
   ``zip2zip.corpora``, and the unseen ``go``, split ``heldout``): the first ``--eval-chars`` characters of
   each domain's held-out documents (whole documents in the corpus's fixed order, the last one cut), scored
   with ``zip2zip.evaluation.scoring.compare_on_domains`` (strict: the canonical LZW stream only, so an upper bound
   for zip2zip; windows of ``--max-length`` positions, a fresh codebook per window). With ``--control
   FOLDER`` the no-compression control (the same recipe and tokens with ``max_subtokens=1``, so no
   hypertokens) is scored on the same texts and windows: zip2zip / control is the quality compression costs
   on top of what fine-tuning alone does. Input compression is also counted on the whole held-out split.
2. **Generation** (``benchmarks/generation.py``'s :func:`measure`): greedy, batch 1, CPU, continuations of
   held-out code and prose prompts (``--prompt-tokens`` base tokens; zip2zip reads their LZW codes), by
   ``--new-tokens`` base tokens, for the base model, the base model with prompt-lookup decoding and zip2zip,
   with the share of repeated 8-grams of each continuation (greedy LZW output can loop cheaply).
3. **Multiple choice through lm-eval**: "which of four candidates is the true next line (code) / next
   sentence (prose) of this held-out document?", the distractors being lines / sentences of similar length
   from other held-out documents; the items are built here (deterministic, ``--seed``) and evaluated with
   the tasks in ``benchmarks/tasks/`` for zip2zip (lm-eval model ``zip2zip``), the base model (lm-eval's
   ``hf``) and the base model through the ``zip2zip`` class (the same scoring conventions as zip2zip).
4. **The long run's curves** (``--run FOLDER``, the training run's ``--output``): held-out bits per byte per
   domain against the base tokens seen (``heldout.json``), the training batches' bits per byte (the newest
   checkpoint's ``trainer_state.json``), and a fit ``a + b * tokens^(-c)`` of the pooled held-out curve with
   its extrapolation to 2x and 4x the tokens seen. What was read is kept in ``results.json``; ``--run``
   naming such a ``results.json`` reuses its curves.
5. **Long context** (``--long-context``, on by default; ``benchmarks/long_context.py``'s functions): strict
   bits per byte of base, zip2zip and the control (when given; when carried from an earlier ``results.json``,
   its long-context scores come along where that run scored the same documents) in windows of 1,024 .. 8,192
   positions on whole long held-out documents of code, prose and ``go``, the same bytes at every window, with
   compression per window; the time for 128 new base tokens after a 4,096-token code prompt and the KV-cache
   bytes that prompt leaves, base vs zip2zip; greedy continuations of 8 held-out code files cut mid-file, base
   vs zip2zip: which write their 128 new base tokens, which end the file.
6. **Plots** of the above (matplotlib, Agg).

The bars (the release issue's, for one run and the same windows for base and zip2zip):

- strict bits per byte zip2zip / base <= 1.10x on code, <= 1.05x on prose, <= 1.20x on the unseen ``go``;
- own greedy continuations of code: >= 1.20 base tokens per generated code and hypertokens >= 15% of the
  emitted codes; repeated-8-gram share of zip2zip's continuations at most the base model's + 10 points
  (code and prose);
- lm-eval next-line accuracy (``acc``) at most 5 points below the base model's (lm-eval's ``hf`` run), code
  and prose;
- time for the same new base tokens of code continuation <= 0.85x the base model's;
- long context: zip2zip / base bits per byte at the 4,096 window no higher than at the 1,024 window, on code and
  on ``go``; zip2zip / control pooled over the domains (byte-weighted) <= 1.10x at 1,024 and <= 1.12x at 4,096
  (not measured without the control's scores); all 8 cut code files continued by zip2zip for their full 128
  base tokens without end-of-sequence; after the 4,096-token code prompt, the time for 128 new base tokens
  <= 0.75x the base model's and the KV-cache bytes <= 0.80x.

When it measures the shipped model (no ``--model``, not ``--quick``) it also writes a compact summary (the bars
with their verdicts, bits per byte per domain, generation, multiple choice, long context) into the shipped
checkpoint folder (``release_results.json``), which ``zip2zip export shipped`` renders into the model card.

Run (about 20 minutes on two cores, half of it the multiple-choice part, plus the long-context section, the
longest part at full size: four windows over two long documents per domain for every model; ``--no-long-context``
leaves it out; the sizes are flags):
``python -m benchmarks.release [--model FOLDER] [--control FOLDER] [--run FOLDER] [--threads 1]``.
``--quick`` is a smoke run of about two minutes whose numbers mean nothing (write it elsewhere with ``--out``).
``--render-only`` redraws the report from ``results.json`` (with ``--run``, after re-reading the run's curves).
"""
