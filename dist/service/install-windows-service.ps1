# Installs buktor-middleware as a Windows service that starts at boot and
# is restarted when it fails, then starts it. Run in an elevated PowerShell
# (Run as administrator), from the unpacked release folder (or pass
# -Folder):
#
#   powershell -ExecutionPolicy Bypass -File service\install-windows-service.ps1
#
# It runs the program's own commands, which work the same without this
# script:
#
#   buktor-middleware.exe check
#   buktor-middleware.exe service install
#   buktor-middleware.exe service start
#
# Logs: daily files in logs\ beside his-config.json. The service runs as
# LocalSystem. Stop and remove it with remove-windows-service.ps1.
#
# The program's service commands were tested under Wine's service manager
# in this project's CI; this script itself was never run there (no
# PowerShell). The Task Scheduler scripts beside it are the alternative.

param(
    [string]$Folder = (Split-Path -Parent $PSScriptRoot),
    [string]$Name = "BuktorMiddleware"
)
$ErrorActionPreference = "Stop"

$exe = Join-Path $Folder "buktor-middleware.exe"
$config = Join-Path $Folder "his-config.json"
if (-not (Test-Path $exe)) { throw "no ${exe}: run this from the unpacked release, or pass -Folder" }
if (-not (Test-Path $config)) { throw "no ${config}: copy an example from $Folder\examples first" }

# Check the config against the HIS before installing anything.
& $exe --config $config check
if ($LASTEXITCODE -ne 0) { throw "buktor-middleware check found errors: fix his-config.json, then run this again" }

& $exe --config $config service install --name $Name
if ($LASTEXITCODE -ne 0) { throw "service install failed (see the line above)" }
& $exe service start --name $Name
if ($LASTEXITCODE -ne 0) { throw "service start failed (see the line above, and the files in $Folder\logs)" }

Write-Host "open the firewall only if Buktor reaches this server directly (not through nginx or ngrok on it):"
Write-Host "  New-NetFirewallRule -DisplayName 'Buktor middleware' -Direction Inbound -Protocol TCP -LocalPort 5000 -Action Allow"
