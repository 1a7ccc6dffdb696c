# Stops the service that install-windows-service.ps1 installed (a graceful
# stop, as Ctrl-C) and removes it. The journal (buktor-journal.db), the
# config and the logs stay: events not yet written to the HIS are written
# when the middleware runs again. Run in an elevated PowerShell:
#
#   powershell -ExecutionPolicy Bypass -File service\remove-windows-service.ps1
#
# The same as `buktor-middleware.exe service uninstall`. This script itself
# was never run in CI (no PowerShell there); the command was, under Wine.

param(
    [string]$Folder = (Split-Path -Parent $PSScriptRoot),
    [string]$Name = "BuktorMiddleware"
)
$ErrorActionPreference = "Stop"

$exe = Join-Path $Folder "buktor-middleware.exe"
if (-not (Test-Path $exe)) { throw "no ${exe}: run this from the unpacked release, or pass -Folder" }
$ErrorActionPreference = "Continue"  # the program's exit code says whether it failed
& $exe service uninstall --name $Name 2>&1 | Write-Host
if ($LASTEXITCODE -ne 0) { throw "service uninstall failed (see the line above)" }
