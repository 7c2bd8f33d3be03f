# Endpoints come from the standard AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), which the
# provider honours itself; credentials from the standard chain. Only these emulator-specific
# switches depend on var.emulator.
provider "aws" {
  region = var.region

  # Emulators accept any credentials; AWS uses the standard chain (null = not set here).
  access_key = var.emulator ? "test" : null
  secret_key = var.emulator ? "test" : null

  skip_credentials_validation = var.emulator
  skip_requesting_account_id  = var.emulator
  skip_metadata_api_check     = var.emulator
  skip_region_validation      = var.emulator
  s3_use_path_style           = var.emulator

  default_tags {
    tags = {
      Project     = "depot"
      Environment = terraform.workspace
      ManagedBy   = "terraform"
    }
  }
}
