"""The built-in benchmark tasks (DESIGN.md, "Task"): dataset + model + recipe, with their sources.

Recipes follow the papers in PAPERS.md so that results are comparable with published tables; where a
paper leaves a value open the ``source`` string says what we chose.  The two CPU tasks
(``digits-mlp``, ``fmnist-lenet300``) are tuned for the quick grid: a few seconds per run on one thread.
The table in docs/tasks.md lists the same information.
"""
from __future__ import annotations

from benchmark.tasks.base import Recipe, Task, register_task

DIGITS_MLP = register_task(Task(
    name="digits-mlp",
    dataset="digits",
    model="mlp",
    model_args={"hidden": [128, 64]},
    recipe=Recipe(epochs=15, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                  lr_schedule="cosine", eval_batch_size=1000),
    source="sparsebench quick CPU recipe (no paper): MLP 64-128-64-10 on scikit-learn digits, SGD momentum "
           "0.9, lr 0.1, wd 5e-4, cosine, 15 epochs, batch 64; dense reaches about 97 % test accuracy",
    description="seconds per run on one CPU thread; the smoke test of every method",
))

FMNIST_LENET300 = register_task(Task(
    name="fmnist-lenet300",
    dataset="fashion-mnist",
    model="mlp",
    model_args={"hidden": [300, 100]},
    recipe=Recipe(epochs=10, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0,
                  lr_schedule="cosine", eval_batch_size=10000),
    source="LeNet-300-100 (LeCun et al. 1998; Frankle & Carbin 2019's MNIST network) on Fashion-MNIST; "
           "sparsebench CPU recipe: SGD momentum 0.9, lr 0.1, batch 128, cosine, 10 epochs (dense ≈ 89 %)",
    description="the main CPU task; Fashion-MNIST from the Debian package dataset-fashion-mnist",
))

FMNIST_LENET5 = register_task(Task(
    name="fmnist-lenet5",
    dataset="fashion-mnist",
    model="lenet5",
    recipe=Recipe(epochs=10, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.0,
                  lr_schedule="cosine", eval_batch_size=10000),
    source="LeNet-5 (LeCun et al. 1998) on Fashion-MNIST; sparsebench CPU recipe in the style of "
           "fmnist-lenet300: SGD momentum 0.9, lr 0.05, batch 128, cosine, 10 epochs",
    description="a small convolutional CPU task",
))

FMNIST_RESNET8 = register_task(Task(
    name="fmnist-resnet8",
    dataset="fashion-mnist",
    dataset_args={"image_size": 14},
    model="resnet8",
    model_args={"shortcut": "conv", "init": "kaiming_normal"},
    recipe=Recipe(epochs=10, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                  lr_schedule="cosine", eval_batch_size=10000),
    source="CPU analogue of the papers' CIFAR ResNet-20 (Sign-In, HAM, PILoT): a batch-norm ResNet-8 (one "
           "basic block per stage, 16-32-64 channels, 1×1-conv shortcuts, Kaiming normal) on Fashion-MNIST "
           "area-resized to 14 × 14; CIFAR-style recipe SGD momentum 0.9, lr 0.1, batch 128, wd 5e-4, cosine, "
           "10 full epochs (sparsebench choice; about 10 s an epoch on one CPU thread)",
    description="the batch-norm residual CPU task (issue 20): weight decay on, as in the papers' CIFAR recipes",
))

FMNIST_RESNET20 = register_task(Task(
    name="fmnist-resnet20",
    dataset="fashion-mnist",
    model="resnet20",
    model_args={"shortcut": "conv", "init": "kaiming_normal"},
    recipe=Recipe(epochs=20, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                  lr_schedule="cosine", eval_batch_size=2000),
    source="the papers' CIFAR-10 ResNet-20 (Sign-In, PILoT: 16-32-64 channels, 1×1-conv shortcuts, Kaiming "
           "normal) on 28 × 28 Fashion-MNIST with the cifar10-resnet20 recipe (SGD momentum 0.9, batch 256, lr "
           "0.1, wd 1e-4, cosine) for 20 epochs (sparsebench choice: a GPU task for grids/gpu-evidence.toml; "
           "about 280 s an epoch on one CPU thread)",
    description="GPU evidence task (issue 22): ResNet-20 on Fashion-MNIST, data that travels to a GPU box",
))

CIFAR10_RESNET20 = register_task(Task(
    name="cifar10-resnet20",
    dataset="cifar10",
    model="resnet20",
    model_args={"shortcut": "conv", "init": "kaiming_normal"},
    recipe=Recipe(epochs=150, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                  lr_schedule="cosine", eval_batch_size=1000),
    source="PILoT (Jacobs & Burkholz, ICLR 2025) CIFAR recipe, also Sign-In's CIFAR-10 ResNet-20 task: SGD "
           "momentum 0.9, batch 256, lr 0.1 (plain weights), wd 1e-4, cosine, 150 epochs, Kaiming normal; "
           "crop+flip augmentation",
    description="Sign-In Table: random 80/90/95 % = 88.25 / 86.25 / 83.56",
))

CIFAR10_VGG16 = register_task(Task(
    name="cifar10-vgg16",
    dataset="cifar10",
    model="vgg16",
    model_args={"init": "kaiming_normal"},
    recipe=Recipe(epochs=160, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                  lr_schedule="multistep", milestones=(0.5, 0.75), gamma=0.1, eval_batch_size=1000),
    source="SynFlow (Tanaka et al., NeurIPS 2020) lottery_vgg VGG-16-bn: 160 epochs, batch 128, SGD momentum "
           "0.9, lr 0.1 ×0.1 at epochs 80 and 120, wd 1e-4 (our reading of its run scripts; confirm)",
    description="SynFlow arrays @90 %: random 91.15, magnitude 93.12, SNIP 92.26, GraSP 91.84, SynFlow 93.26",
))

CIFAR10_RESNET18 = register_task(Task(
    name="cifar10-resnet18",
    dataset="cifar10",
    model="resnet18",
    model_args={"init": "kaiming_normal"},
    recipe=Recipe(epochs=160, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                  lr_schedule="multistep", milestones=(0.5, 0.75), gamma=0.1, eval_batch_size=1000),
    source="SynFlow (Tanaka et al., NeurIPS 2020) ResNet-18 on CIFAR-10, same recipe as its VGG-16 runs: "
           "160 epochs, batch 128, SGD momentum 0.9, lr 0.1 ×0.1 at epochs 80 and 120, wd 1e-4 (our reading of "
           "its run scripts; confirm)",
    description="SynFlow arrays @90 %: random 92.92, magnitude 94.40, SNIP 94.29, GraSP 93.78, SynFlow 94.07",
))

CIFAR10_WRN22_2 = register_task(Task(
    name="cifar10-wrn22-2",
    dataset="cifar10",
    model="wrn22-2",
    model_args={"init": "kaiming_normal"},
    recipe=Recipe(epochs=200, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                  lr_schedule="multistep", milestones=(0.3, 0.6, 0.8), gamma=0.2, eval_batch_size=1000),
    source="WRN-22-2 on CIFAR-10 as in RigL (Evci et al. 2020); recipe of the Wide ResNet paper (Zagoruyko & "
           "Komodakis 2016): 200 epochs, batch 128, SGD momentum 0.9, lr 0.1 ×0.2 at 30/60/80 %, wd 5e-4 "
           "(RigL's exact CIFAR schedule not confirmed here)",
    description="RigL Table: RigL-ERK 80 % 93.6, 90 % 92.9; static ERK 92.9 / 91.5",
))

CIFAR100_RESNET18 = register_task(Task(
    name="cifar100-resnet18",
    dataset="cifar100",
    model="resnet18",
    model_args={"init": "kaiming_normal"},
    recipe=Recipe(epochs=160, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                  lr_schedule="cosine", eval_batch_size=1000),
    source="Sign-In (Gadhikar, Jacobs et al., NeurIPS 2025) CIFAR-100 ResNet-18 task with the common CIFAR "
           "recipe: SGD momentum 0.9, batch 128, lr 0.1, wd 5e-4, cosine, 160 epochs (exact Sign-In values "
           "OPEN in PAPERS.md)",
    description="Sign-In Table: random 80/90/95 % = 73.95 / 72.96 / 71.36",
))

IMAGENET_RESNET50 = register_task(Task(
    name="imagenet-resnet50",
    dataset="imagenet",
    model="resnet50",
    recipe=Recipe(epochs=100, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                  lr_schedule="cosine", warmup_epochs=5.0, label_smoothing=0.1, eval_batch_size=256),
    source="ImageNet ResNet-50 as in Sign-In / HAM / PILoT (dense 100 epochs 76.72 in HAM): 100 epochs, "
           "batch 256, SGD momentum 0.9, lr 0.1, wd 1e-4, label smoothing 0.1, 5 warm-up epochs, cosine",
    description="needs <root>/imagenet/{train,val}; GPU only",
))

LINREG_DIAG = register_task(Task(
    name="linreg-diag",
    dataset="sparse-regression",
    dataset_args={"n_samples": 40, "n_features": 100, "k": 5, "noise": 0.0, "data_seed": 0},
    model="diagonal",
    model_args={"depth": 2, "init": "pilot", "scale": 0.1},
    recipe=Recipe(epochs=2000, batch_size=40, optimizer="sgd", lr=0.01, momentum=0.0, weight_decay=0.0,
                  lr_schedule="constant", eval_batch_size=1000, loss="mse", eval_every=100),
    source="PILoT (ICLR 2025) toy: underdetermined regression, 40 samples, 100 features, 5-sparse truth, "
           "Gaussian design, diagonal network x = m ⊙ w with the γ = 1 split, full-batch GD on the MSE "
           "(one step per epoch). PAPERS.md gives GD step 1e-4 without the loss scaling; we use lr 0.01 on "
           "torch's mean-squared loss (our choice; fits the data in ~1000 steps)",
    description="metric: ||x_t - x*||_2 with x* in Data.extra['x_star']",
))

TEACHER_STUDENT = register_task(Task(
    name="teacher-student",
    dataset="teacher-student",
    dataset_args={"d": 2, "n_train": 100, "n_test": 1000, "data_seed": 0},
    model="teacher-student",
    model_args={"width": 20},
    recipe=Recipe(epochs=10000, batch_size=100, optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0,
                  lr_schedule="constant", eval_batch_size=1000, loss="mse", eval_every=500),
    source="NanoAdam (Zhou et al., NeurIPS 2025) toy: 2 ReLU teacher neurons in 2-d, student of 20 neurons with "
           "antisymmetric init, weights N(0, 1/n), pretraining by full-batch GD for 10k steps (one step per epoch); "
           "the paper's lr 2 diverges on torch's mean-squared loss with our teacher, lr 0.5 reaches test MSE "
           "~1e-5 (our choice)",
    description="fine-tune on a 3-neuron teacher by overriding dataset_args.teacher_neurons",
))
