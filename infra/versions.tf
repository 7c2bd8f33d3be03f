terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100.0"
    }
  }

  # Partial configuration: local state by default (git-ignored terraform.tfstate.d/), or
  # another directory with `-backend-config=workspace_dir=...`. For AWS, see README.md:
  # backend_override.tf switches to the S3 backend with a partial config per account.
  backend "local" {}
}
