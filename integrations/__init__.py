"""Glue for host projects (model-vs-human, FastGAN, training recipes, torch-fidelity).

Installed as ``topk_plugin.integrations``. Each integration imports its host
lazily; the core package never imports this one.
"""
