"""Datasets (Fashion-MNIST, CIFAR, ImageNet-style folders, synthetic), transforms and loaders."""

from senet.data.base import DataError, DatasetInfo, default_data_root
from senet.data.cifar import cifar_dataset
from senet.data.factory import DATASETS, create_dataset
from senet.data.fashion_mnist import fashion_mnist_dataset, prepare_fashion_mnist
from senet.data.imagefolder import image_folder_dataset, load_rgb
from senet.data.loader import create_loader, default_workers, set_epoch
from senet.data.memory import InMemoryImages
from senet.data.sampler import EpochSampler, SeededItems, ShardSampler, item_seed
from senet.data.synthetic import synthetic_dataset
from senet.data.transforms import imagenet_eval_transform, imagenet_train_transform

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "EpochSampler",
    "InMemoryImages",
    "SeededItems",
    "ShardSampler",
    "cifar_dataset",
    "create_dataset",
    "create_loader",
    "default_data_root",
    "default_workers",
    "fashion_mnist_dataset",
    "image_folder_dataset",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "item_seed",
    "load_rgb",
    "prepare_fashion_mnist",
    "set_epoch",
    "synthetic_dataset",
]
