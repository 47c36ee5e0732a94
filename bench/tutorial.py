"""The tutorial's code, run as one script: the baseline of bench/run.sh.

Source: Alessio Devoto, "LogitLens from scratch with Hugging Face Transformers",
https://alessiodevoto.github.io/LogitLens (microsoft/phi-1.5). Every code cell of the post is
reproduced below in order, as written, including the first argmax-only lens pass and its
heatmap that the post later redoes with entropies. The only changes:

  - the model id is a local directory from argv (the Hub is not used);
  - `device = "cpu"` (the post uses `device` without defining it);
  - the prompt comes from argv (default: the post's example);
  - `--dtype bfloat16|float32` picks the `torch_dtype` (the post: torch.bfloat16);
  - each figure is saved with plt.savefig instead of being shown inline by the notebook:
    the entropy heatmap to --out, the argmax heatmap next to it as <stem>-argmax<ext>.

Usage: python bench/tutorial.py MODEL_DIR [PROMPT] [--dtype bfloat16|float32] [--out FILE]
"""

import argparse
import os

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model_dir")
parser.add_argument("prompt", nargs="?", default="The quick brown fox jumps over the lazy")
parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
parser.add_argument("--out", default="logitlens_tutorial.png")
args = parser.parse_args()
out_stem, out_ext = os.path.splitext(args.out)

device = "cpu"  # change: the post leaves `device` undefined

# ---- cell 1 -------------------------------------------------------------------------------
from transformers import AutoModelForCausalLM, AutoTokenizer
import torch

model_id = args.model_dir  # change: was "microsoft/phi-1.5"

# load the model
model = AutoModelForCausalLM.from_pretrained(model_id, torch_dtype=getattr(torch, args.dtype)).eval().to(device)  # change: dtype from argv
tokenizer = AutoTokenizer.from_pretrained(model_id, add_bos_token=True, bos_token='<bos>', use_fast=False)

# ---- cell 2 -------------------------------------------------------------------------------
example = args.prompt  # change: was "The quick brown fox jumps over the lazy"
inputs = tokenizer(example, return_tensors="pt").to(device)

print("Input shape: ", inputs["input_ids"].shape)

# ---- cell 3 -------------------------------------------------------------------------------
original_input_tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0], skip_special_tokens=False)
print("Input tokens: ", original_input_tokens)


# ---- cell 4 -------------------------------------------------------------------------------
# I really don't like the Ġ
def remove_g(item):
  if isinstance(item, list):
    return [remove_g(i) for i in item]
  else:
    return item.replace("Ġ", " ")

original_input_tokens = remove_g(original_input_tokens)
original_input_tokens

# ---- cell 5 -------------------------------------------------------------------------------
# we need all the intermediate hidden states
with torch.no_grad():
    outputs = model(**inputs, output_hidden_states=True)

# # print(outputs.keys())
print("Logits shape: ", outputs["logits"].shape)

# ---- cell 6 -------------------------------------------------------------------------------
hidden_states = outputs.hidden_states

# we will store the predicted tokens at each layer here
logitlens = []

for i, hidden_state in enumerate(hidden_states):
    print(f"Layer {i}")

    # apply the language model head to the hidden states
    logits = model.lm_head(hidden_state)

    # decode the logits to get the predicted token ids
    predicted_token_ids = logits.argmax(-1)

    # convert the token ids to tokens
    predicted_tokens = tokenizer.convert_ids_to_tokens(predicted_token_ids[0], skip_special_tokens=False)
    print(remove_g(predicted_tokens))

    # append the predicted tokens to the list
    logitlens.append(remove_g(predicted_tokens))

# ---- cell 7 -------------------------------------------------------------------------------
# create a heatmap that has a row for each list in the logitlens list
import matplotlib.pyplot as plt
import seaborn as sns
import numpy as np

sns.set_theme(style="white")

# just for the bkg color
intensities = np.ones((len(hidden_states), len(original_input_tokens)))

# Create heatmap
plt.figure(figsize=(20, 10))
ax = sns.heatmap(intensities[::2],
                annot=remove_g(logitlens)[::2],
                fmt='',
                cmap='Greys',
                xticklabels=original_input_tokens,
                yticklabels=list(range(len(logitlens)))[::2],
                cbar=False
                ).invert_yaxis()
plt.savefig(out_stem + "-argmax" + out_ext)  # change: the notebook shows the figure


# ---- cell 8 -------------------------------------------------------------------------------
# aux function to compute the entropy from logits
def entropy_from_logits(logits):
    probs = torch.nn.functional.softmax(logits, dim=-1).clamp(1e-8, 1) #avoid nans
    return -torch.sum(probs * torch.log(probs), dim=-1).squeeze()


# ---- cell 9 -------------------------------------------------------------------------------
logitlens = []
entropies = []

for i, hidden_state in enumerate(hidden_states):

    print(f"Layer {i}")

    # apply the language model head to the hidden states
    logits = model.lm_head(hidden_state)

    # get the entropy of the logits
    entropy = entropy_from_logits(logits).float().cpu().detach().numpy()

    # decode the logits to get the predicted token ids
    predicted_token_ids = logits.argmax(-1)

    # convert the token ids to tokens
    predicted_tokens = tokenizer.convert_ids_to_tokens(predicted_token_ids[0], skip_special_tokens=False)
    print(remove_g(predicted_tokens))

    # append the predicted tokens to the list
    logitlens.append(remove_g(predicted_tokens))
    entropies.append(entropy)

# ---- cell 10 ------------------------------------------------------------------------------
# Create figure and axis
plt.figure(figsize=(20, 10))

# Create heatmap
ax = sns.heatmap(np.stack(entropies)[::2],
                annot=logitlens[::2],
                fmt='',
                cmap='YlGnBu',
                xticklabels=original_input_tokens,
                yticklabels=list(range(len(logitlens)))[::2],
                ).invert_yaxis()
plt.savefig(args.out)  # change: the notebook shows the figure
