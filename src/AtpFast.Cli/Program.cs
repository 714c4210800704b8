using AtpFast.Cli;

CliCancellation.Install();
return CliApp.Run(args);
