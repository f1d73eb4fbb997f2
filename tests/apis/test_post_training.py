"""Post-training: algorithm configs, fine-tune requests and job status."""

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis._jobs import Job, JobStatus
from stack.apis.post_training import (
    AlgorithmConfig,
    DatasetFormat,
    DPOConfig,
    LoraFinetuningConfig,
    OptimizerType,
    PostTraining,
    PostTrainingJobArtifactsResponse,
    PostTrainingJobStatus,
    PostTrainingJobStatusResponse,
    QATFinetuningConfig,
    TrainingConfig,
)

algorithms = TypeAdapter(AlgorithmConfig)

LORA = {
    "type": "LoRA",
    "lora_attn_modules": ["q_proj", "v_proj"],
    "apply_lora_to_mlp": True,
    "apply_lora_to_output": False,
    "rank": 8,
    "alpha": 16,
    "use_dora": False,
    "quantize_base": False,
}
QAT = {"type": "QAT", "quantizer_name": "int8", "group_size": 32}
TRAINING = {
    "n_epochs": 1,
    "max_steps_per_epoch": 10,
    "gradient_accumulation_steps": 1,
    "max_validation_steps": 2,
    "data_config": {"dataset_id": "alpaca", "batch_size": 4, "shuffle": True, "data_format": "instruct"},
    "optimizer_config": {"optimizer_type": "adamw", "lr": 3e-4, "weight_decay": 0.1, "num_warmup_steps": 5},
}


@pytest.mark.parametrize("payload,cls", [(LORA, LoraFinetuningConfig), (QAT, QATFinetuningConfig)])
def test_each_algorithm_parses_and_round_trips(payload, cls):
    parsed = algorithms.validate_python(payload)
    assert type(parsed) is cls
    assert parsed.model_dump(mode="json") == payload


def test_bad_algorithm_discriminator_is_rejected():
    with pytest.raises(ValidationError):
        algorithms.validate_python({**QAT, "type": "lora"})


def test_training_config_fills_spec_defaults():
    cfg = TrainingConfig.model_validate(TRAINING)
    assert cfg.dtype == "bf16" and cfg.efficiency_config is None
    assert cfg.data_config.packed is False and cfg.data_config.train_on_input is False
    assert cfg.data_config.data_format is DatasetFormat.instruct
    assert cfg.optimizer_config.optimizer_type is OptimizerType.adamw


def test_supervised_fine_tune_body(body_model):
    model = body_model(PostTraining.supervised_fine_tune)
    body = model.model_validate(
        {"job_uuid": "j1", "training_config": TRAINING, "hyperparam_search_config": {}, "logger_config": {},
         "model": "tiny-llama", "algorithm_config": LORA}
    )
    assert isinstance(body.algorithm_config, LoraFinetuningConfig) and body.checkpoint_dir is None
    with pytest.raises(ValidationError, match="model"):
        model.model_validate({"job_uuid": "j1", "training_config": TRAINING, "hyperparam_search_config": {},
                              "logger_config": {}})


def test_preference_optimize_body_takes_dpo_config(body_model):
    model = body_model(PostTraining.preference_optimize)
    dpo = {"reward_scale": 1.0, "reward_clip": 5.0, "epsilon": 0.1, "gamma": 0.99}
    body = model.model_validate(
        {"job_uuid": "j2", "finetuned_model": "m", "algorithm_config": dpo, "training_config": TRAINING,
         "hyperparam_search_config": {}, "logger_config": {}}
    )
    assert isinstance(body.algorithm_config, DPOConfig) and body.algorithm_config.beta == 0.1


def test_job_status_round_trips():
    payload = {
        "job_uuid": "j1",
        "status": "in_progress",
        "scheduled_at": "2025-01-20T10:00:00Z",
        "started_at": "2025-01-20T10:00:05Z",
        "completed_at": None,
        "resources_allocated": {"gpus": 1},
        "checkpoints": [{"iters": 10, "path": {"uri": "file:///ckpt/10"}, "epoch": 0}],
    }
    status = PostTrainingJobStatusResponse.model_validate(payload)
    assert status.status is PostTrainingJobStatus.in_progress
    assert PostTrainingJobStatusResponse.model_validate({**payload, "status": "cancelled"}).status == "cancelled"
    assert PostTrainingJobStatusResponse.model_validate(status.model_dump(mode="json")) == status
    with pytest.raises(ValidationError, match="status"):
        PostTrainingJobStatusResponse.model_validate({**payload, "status": "paused"})
    artifacts = PostTrainingJobArtifactsResponse.model_validate({"job_uuid": "j1", "checkpoints": []})
    assert artifacts.checkpoints == []


def test_job_and_job_status():
    assert Job(job_id="e1").model_dump(mode="json") == {"job_id": "e1"}
    assert [s.value for s in JobStatus] == ["completed", "in_progress", "failed", "scheduled"]
