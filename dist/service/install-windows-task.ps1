# Runs buktor-middleware at startup with the Task Scheduler, as the
# original documentation does: the alternative to the Windows service
# (install-windows-service.ps1), which is the better choice (a graceful
# stop, restart on failure, `sc query`). Run in an elevated PowerShell,
# from the unpacked release folder (or pass -Folder):
#
#   powershell -ExecutionPolicy Bypass -File service\install-windows-task.ps1
#
# NOT RUN in this project's CI (no Windows there); the commands are the
# Task Scheduler's documented cmdlets. Logs: the task writes them to
# buktor-middleware.log in the folder.

param(
    [string]$Folder = (Split-Path -Parent $PSScriptRoot),
    [string]$TaskName = "BuktorMiddleware"
)
$ErrorActionPreference = "Stop"

$exe = Join-Path $Folder "buktor-middleware.exe"
$config = Join-Path $Folder "his-config.json"
$log = Join-Path $Folder "buktor-middleware.log"
if (-not (Test-Path $exe)) { throw "no ${exe}: run this from the unpacked release, or pass -Folder" }
if (-not (Test-Path $config)) { throw "no ${config}: copy an example from $Folder\examples first" }

# Check the config against the HIS before installing anything.
& $exe --config $config check
if ($LASTEXITCODE -ne 0) { throw "buktor-middleware check found errors: fix his-config.json, then run this again" }

# cmd /c for the redirection of standard error (the log) to a file.
$action = New-ScheduledTaskAction -Execute "cmd.exe" `
    -Argument "/c `"`"$exe`" --config `"$config`" 2>> `"$log`"`"" -WorkingDirectory $Folder
$trigger = New-ScheduledTaskTrigger -AtStartup
# Restart it if it stops; no time limit.
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable
Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings `
    -User "SYSTEM" -RunLevel Highest -Force | Out-Null
Start-ScheduledTask -TaskName $TaskName
Write-Host "installed and started task $TaskName; log: $log"
Write-Host "open the firewall only if Buktor reaches this server directly (not through nginx on it):"
Write-Host "  New-NetFirewallRule -DisplayName 'Buktor middleware' -Direction Inbound -Protocol TCP -LocalPort 5000 -Action Allow"
