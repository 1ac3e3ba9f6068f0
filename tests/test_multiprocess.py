"""Two processes under `accelerate launch` on the CPU (gloo) run the same zip2zip training as one process.

With accelerate 1.15, `accelerate launch --cpu --num_processes 2` starts a single process unless an MPI
hostfile is given; `--multi_gpu --num_processes 2` starts two through torchrun, and with `use_cpu=True` (the
Zip2ZipSFTConfig default on a machine without an accelerator) accelerate joins them with the gloo backend
(`DistributedType.MULTI_CPU`). That is the command used here.

The launched script trains a tiny model with LoRA for 3 steps on two processes; each rank then writes its
parameters, and the test checks that both ranks hold identical parameters (DDP kept them in sync) and that
training changed them. It also checks that the step's loss is normalised over both ranks' targets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from datasets import Dataset
    from _tiny_models import tiny_base_model
    from _tiny_tokenizers import TRAINING_TEXT, tiny_bpe_tokenizer
    from zip2zip.trainer.sft_config import Zip2ZipSFTConfig
    from zip2zip.utils.peft import default_lora_config
    from zip2zip.conversion import zip2zip_from_base
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

    out = sys.argv[1]
    base_tok = tiny_bpe_tokenizer()
    base = tiny_base_model("llama", vocab_size=len(base_tok), seed=0)
    torch.manual_seed(0)
    model, tok = zip2zip_from_base(base, tokenizer=base_tok, max_codebook_size=64, encoder_num_layers=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = Zip2ZipSFTConfig(
        output_dir=os.path.join(out, "run"), max_steps=3, per_device_train_batch_size=2, learning_rate=3e-3,
        logging_steps=1, save_strategy="no", report_to="none", gradient_checkpointing=False,
        disable_tqdm=True, dataloader_pin_memory=False, seed=0, bf16=False,
    )
    trainer = Zip2ZipSFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 4}),
        processing_class=tok, peft_config=default_lora_config(model, r=4, alpha=8),
    )
    trainer.train()
    rank = trainer.accelerator.process_index
    params = {k: v.detach().cpu() for k, v in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
    torch.save(params, os.path.join(out, f"rank{rank}.pt"))
    info = {
        "world": trainer.accelerator.num_processes,
        "distributed": trainer.accelerator.distributed_type.name,
        "logs": trainer.state.log_history,
    }
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump(info, handle)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_training_keeps_ranks_identical(tmp_path: Path):
    import accelerate  # noqa: F401  (a pinned dependency: a broken install fails here)

    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    here = Path(__file__).resolve().parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()), str(script), str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    import json

    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(info["world"] == 2 and info["distributed"] == "MULTI_CPU" for info in infos)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between ranks"
    # Training happened: the LoRA B matrices start at zero and are not zero any more.
    lora_b = [t for name, t in ranks[0].items() if "lora_B" in name]
    assert lora_b and any(t.abs().max() > 0 for t in lora_b)
    logs = [entry for entry in infos[0]["logs"] if "loss" in entry]
    assert len(logs) == 3 and all(entry["loss"] > 0 for entry in logs)
    # Metrics are gathered over both ranks, so both ranks log the same values.
    assert logs == [entry for entry in infos[1]["logs"] if "loss" in entry]
