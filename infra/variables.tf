variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "emulator" {
  description = "True when AWS_ENDPOINT_URL points at an emulator (moto, LocalStack): skips the checks that only real AWS answers. The Makefile sets it; never set it for AWS."
  type        = bool
  default     = false
}
