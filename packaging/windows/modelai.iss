; Inno Setup 6 script: the Windows installer of the one-folder build (dist\ModelAI\ from packaging\build.py).
;
;   iscc /DVariant=cpu  /DAppVersion=0.1.0 packaging\windows\modelai.iss
;   iscc /DVariant=cuda /DAppVersion=0.1.0 packaging\windows\modelai.iss
;
; Defines: Variant (cpu or cuda, must match the torch of the build), AppVersion (engine.__version__),
; optionally SourceDir (the build folder) and VCRedist (vc_redist.x64.exe, Microsoft's VC++ 2015-2022
; x64 runtime installer). The output is dist\installer\ModelAI-<version>-<variant>-setup.exe.
; Both variants share one AppId: installing one replaces the other in place.

#ifndef Variant
  #define Variant "cpu"
#endif
#if Variant == "cpu"
  #define VariantLabel "CPU"
#elif Variant == "cuda"
  #define VariantLabel "NVIDIA CUDA"
#else
  #error Variant must be cpu or cuda: iscc /DVariant=cpu or /DVariant=cuda
#endif
#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=<engine.__version__>
#endif
#ifndef SourceDir
  #define SourceDir AddBackslash(SourcePath) + "..\..\dist\ModelAI"
#endif
#if !FileExists(SourceDir + "\modelai.exe") || !FileExists(SourceDir + "\modelai-desktop.exe")
  #error No build in SourceDir: run python packaging\build.py --variant <Variant> first
#endif
#ifndef VCRedist
  #define VCRedist AddBackslash(SourcePath) + "..\..\build\vc_redist.x64.exe"
#endif
#if !FileExists(VCRedist)
  #error vc_redist.x64.exe not found: download Microsoft's VC++ 2015-2022 x64 runtime to build\ or pass /DVCRedist=<path>
#endif
; The bundled runtime's file version is 14.<Minor>.<Bld>.0, the numbers it writes to the registry when
; installed; machines with this version or newer skip it.
#define VCMajor 0
#define VCMinor 0
#define VCBld 0
#define VCRbld 0
#expr GetVersionComponents(VCRedist, VCMajor, VCMinor, VCBld, VCRbld)

#define AppName "ModelAI"
#define GuiExe "modelai-desktop.exe"
#define CliExe "modelai.exe"
#define ProgId "ModelAI.GeoTIFF"

[Setup]
AppId={{6B7C2F4E-3D1A-4C8B-9E2F-5A0D8C7B1E43}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion} ({#VariantLabel})
AppPublisher={#AppName}
DefaultDirName={autopf}\{#AppName}
DisableProgramGroupPage=yes
; Administrators install for all users; anyone may choose "for me only" (no admin rights needed).
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
ChangesAssociations=yes
UninstallDisplayIcon={app}\{#GuiExe}
UninstallDisplayName={#AppName} ({#VariantLabel})
OutputDir=..\..\dist\installer
OutputBaseFilename={#AppName}-{#AppVersion}-{#Variant}-setup
; One Setup.exe: its compressed data must stay under 4.2 GB (see packaging/windows/README.md).
DiskSpanning=no
Compression=lzma2/max
SolidCompression=yes
LZMAUseSeparateProcess=yes
LZMANumBlockThreads=4
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[InstallDelete]
; A previous version's (or the other variant's) runtime must not mix with this one's.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "{#VCRedist}"; DestName: "vc_redist.x64.exe"; Flags: dontcopy

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#GuiExe}"
Name: "{autoprograms}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\{#CliExe}"" --self-test"; IconFilename: "{app}\{#CliExe}"; Comment: "Checks GDAL/PROJ, GeoTIFF writing, training and prediction on this machine"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#GuiExe}"; Tasks: desktopicon

[Registry]
; "Open with > ModelAI" for .tif and .tiff, without taking the files' default program.
Root: HKA; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: ""; ValueData: "GeoTIFF raster"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\{#ProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#GuiExe},0"
Root: HKA; Subkey: "Software\Classes\{#ProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#GuiExe}"" ""%1"""
Root: HKA; Subkey: "Software\Classes\.tif\OpenWithProgids"; ValueType: string; ValueName: "{#ProgId}"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.tiff\OpenWithProgids"; ValueType: string; ValueName: "{#ProgId}"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "{#AppName}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".tif"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".tiff"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#GuiExe}"" ""%1"""

[Run]
Filename: "{app}\{#GuiExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
var
  RestartAfterRuntime: Boolean;

function RuntimeVersionAtLeast(const View: Integer): Boolean;
var
  Key: String;
  Major, Minor, Build: Cardinal;
begin
  Key := 'SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64';
  Result := RegQueryDWordValue(View, Key, 'Major', Major)
    and RegQueryDWordValue(View, Key, 'Minor', Minor)
    and RegQueryDWordValue(View, Key, 'Bld', Build)
    and ((Major > {#VCMajor})
      or ((Major = {#VCMajor}) and (Minor > {#VCMinor}))
      or ((Major = {#VCMajor}) and (Minor = {#VCMinor}) and (Build >= {#VCBld})));
end;

{ The runtime registers itself under the 64-bit or the 32-bit registry view depending on its
  release, so either one holding a new enough version counts. }
function VCRuntimeNeeded: Boolean;
begin
  Result := not (RuntimeVersionAtLeast(HKLM64) or RuntimeVersionAtLeast(HKLM32));
end;

{ Installs the runtime before the app's files. It always needs administrator rights: a per-user
  installation asks for them (UAC) just for this step, and goes on without it if refused. }
procedure InstallVCRuntime;
var
  Installer: String;
  ExitCode: Integer;
begin
  ExtractTemporaryFile('vc_redist.x64.exe');
  Installer := ExpandConstant('{tmp}\vc_redist.x64.exe');
  WizardForm.StatusLabel.Caption := 'Installing the Microsoft Visual C++ runtime...';
  if IsAdminInstallMode then begin
    if Exec(Installer, '/install /quiet /norestart', '', SW_HIDE, ewWaitUntilTerminated, ExitCode) then
      RestartAfterRuntime := ExitCode = 3010;
  end else
    ShellExec('runas', Installer, '/install /quiet /norestart', '', SW_HIDE, ewWaitUntilTerminated, ExitCode);
  if VCRuntimeNeeded then
    SuppressibleMsgBox('The Microsoft Visual C++ runtime (x64) could not be installed. ModelAI needs it: '
      + 'install "Microsoft Visual C++ Redistributable 2015-2022 (x64)" as an administrator, then start ModelAI.',
      mbError, MB_OK, IDOK);
end;

procedure CurStepChanged(CurStep: TSetupStep);
begin
  if (CurStep = ssInstall) and VCRuntimeNeeded then
    InstallVCRuntime;
end;

function NeedRestart: Boolean;
begin
  Result := RestartAfterRuntime;
end;
