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
    ],
    extras_require={
        # transformers' Flax BERT is the reference implementation in tests; it needs no torch.
        'test': ['pytest>=8', 'transformers>=4.40,<5', 'matplotlib'],  # matplotlib: plm/viz.py
        'bench': ['pytest>=8', 'transformers>=4.40,<5', 'torch==2.13.0'],
        # exact k-NN for bitext mining (plm/evaluate/mining.py); without it mining runs in JAX
        'faiss': ['faiss-cpu>=1.7'],
    },
)
