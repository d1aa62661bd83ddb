/**
 * Every module by name: the one list the loader validates tasks against and the engine runs.
 * One line per module.
 */
import type { Module } from './contract.ts';
import { aptModule } from './apt.ts';
import { assertModule } from './assert.ts';
import { commandModule } from './command.ts';
import { fileModule } from './file.ts';
import { lineModule } from './line.ts';
import { rebootModule } from './reboot.ts';
import { serviceModule } from './service.ts';
import { sysctlModule } from './sysctl.ts';
import { kernelCmdlineModule } from './kernel_cmdline.ts';
import { kernelModulesModule } from './kernel_modules.ts';
import { passthroughCheckModule } from './passthrough_check.ts';
import { pveVmModule } from './pve_vm.ts';
import { pveCtDevModule } from './pve_ct_dev.ts';
import { pciMappingCheckModule, pciMappingModule } from './pci_mapping.ts';

export const modules: Map<string, Module<any>> = new Map<string, Module<any>>([
  [fileModule.name, fileModule],
  [lineModule.name, lineModule],
  [commandModule.name, commandModule],
  [aptModule.name, aptModule],
  [sysctlModule.name, sysctlModule],
  [serviceModule.name, serviceModule],
  [assertModule.name, assertModule],
  [rebootModule.name, rebootModule],
  [kernelCmdlineModule.name, kernelCmdlineModule],
  [kernelModulesModule.name, kernelModulesModule],
  [passthroughCheckModule.name, passthroughCheckModule],
  [pveVmModule.name, pveVmModule],
  [pveCtDevModule.name, pveCtDevModule],
  [pciMappingModule.name, pciMappingModule],
  [pciMappingCheckModule.name, pciMappingCheckModule],
]);
