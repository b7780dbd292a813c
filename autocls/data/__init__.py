"""Datasets by name, in-memory uint8 tensors, seeded stratified splits, batched augmentation."""
from autocls.data.registry import RawDataset, dataset_recipe, list_datasets, load_dataset, register_dataset
from autocls.data.splits import DataSplits, check_splittable, class_imbalance, make_splits, prepare_data

__all__ = ["RawDataset", "DataSplits", "dataset_recipe", "list_datasets", "load_dataset", "register_dataset", "check_splittable", "class_imbalance", "make_splits", "prepare_data"]
