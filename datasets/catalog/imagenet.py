"""ImageNet (ILSVRC2012): `<root>/imagenet/{train,val}/<wnid>/*.JPEG`, 1000 classes.

The standard crops: random-resized 224 and flip for training, resize 256 then centre 224 otherwise.
"""

from torchvision.transforms import v2

from datasets.folder_format import ImageFolders
from datasets.spec import DatasetSpec

NAME = "imagenet"
SUMMARY = "ImageNet (ILSVRC2012): 1000 classes, 224x224 crops"

SPEC = DatasetSpec(
    name=NAME,
    num_classes=1000,
    input_shape=(3, 224, 224),
    num_train=1281167,
    num_test=50000,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    files=ImageFolders(
        directory="imagenet",
        how_to_get="get ILSVRC2012 from image-net.org and arrange train/ and val/ as one folder per wnid",
        augmented=(v2.RandomResizedCrop(224), v2.RandomHorizontalFlip()),
        plain=(v2.Resize(256), v2.CenterCrop(224)),
    ),
    rank=60,
)
