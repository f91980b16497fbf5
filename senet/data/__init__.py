"""Datasets (Fashion-MNIST, CIFAR, ImageNet-style folders, synthetic) in a registry, transforms
and loaders. ``create_dataset(name, split, **options)``; ``list_datasets()`` lists the names."""

from senet.data._registry import list_datasets, register_dataset
from senet.data.bad_items import ON_BAD_IMAGE, ReportingLoader, skipped_note
from senet.data.base import (
    BadImageError,
    DataError,
    DataOptionError,
    DatasetInfo,
    DatasetOptions,
    default_data_root,
)
from senet.data.cifar import CIFAR10Options, CIFAR100Options, cifar_dataset
from senet.data.distort import RTSDistorted
from senet.data.factory import DATASETS, create_dataset, dataset_options
from senet.data.fashion_mnist import (
    FashionMNISTOptions,
    fashion_mnist_dataset,
    find_fashion_mnist,
    prepare_fashion_mnist,
)
from senet.data.imagefolder import ImageFolderOptions, image_folder_dataset, load_rgb
from senet.data.loader import create_loader, default_workers, set_epoch
from senet.data.memory import InMemoryImages, InMemoryOptions
from senet.data.sampler import EpochSampler, SeededItems, ShardSampler, item_seed
from senet.data.synthetic import SyntheticOptions, synthetic_dataset
from senet.data.transforms import imagenet_eval_transform, imagenet_train_transform

__all__ = [
    "DATASETS",
    "ON_BAD_IMAGE",
    "BadImageError",
    "CIFAR10Options",
    "CIFAR100Options",
    "DataError",
    "DataOptionError",
    "DatasetInfo",
    "DatasetOptions",
    "EpochSampler",
    "FashionMNISTOptions",
    "ImageFolderOptions",
    "InMemoryImages",
    "InMemoryOptions",
    "RTSDistorted",
    "ReportingLoader",
    "SeededItems",
    "ShardSampler",
    "SyntheticOptions",
    "cifar_dataset",
    "create_dataset",
    "create_loader",
    "dataset_options",
    "default_data_root",
    "default_workers",
    "fashion_mnist_dataset",
    "find_fashion_mnist",
    "image_folder_dataset",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "item_seed",
    "list_datasets",
    "load_rgb",
    "prepare_fashion_mnist",
    "register_dataset",
    "set_epoch",
    "skipped_note",
    "synthetic_dataset",
]
