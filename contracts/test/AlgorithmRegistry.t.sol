// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAlgorithmRegistry} from "../src/interfaces/IAlgorithmRegistry.sol";
import {Fixtures} from "./utils/Fixtures.sol";

contract AlgorithmRegistryTest is Fixtures {
    bytes32 internal constant MODEL = keccak256("evflex-milp-v2");
    bytes32 internal constant PARAMS = keccak256("params-v2");

    function test_register_storesAndEmits() public {
        bytes32 expected = keccak256(abi.encode(MODEL, keccak256("highs-1.12.0"), PARAMS));
        vm.expectEmit(address(algorithms));
        emit IAlgorithmRegistry.AlgorithmRegistered(expected, MODEL, "highs-1.12.0", PARAMS, "ipfs://v2");
        vm.prank(operator);
        bytes32 version = algorithms.register(MODEL, "highs-1.12.0", PARAMS, "ipfs://v2");

        assertEq(version, expected);
        assertEq(algorithms.computeVersion(MODEL, "highs-1.12.0", PARAMS), expected);
        IAlgorithmRegistry.Algorithm memory a = algorithms.algorithm(version);
        assertEq(a.modelHash, MODEL);
        assertEq(a.paramsHash, PARAMS);
        assertEq(a.solverVersion, "highs-1.12.0");
        assertEq(a.uri, "ipfs://v2");
        assertEq(a.registeredAt, block.timestamp);
        assertFalse(a.deprecated);
        assertTrue(algorithms.isRegistered(version));
        assertTrue(algorithms.isUsable(version));
    }

    function test_register_byAdmin() public {
        vm.prank(admin);
        bytes32 version = algorithms.register(MODEL, "highs-1.12.0", PARAMS, "");
        assertTrue(algorithms.isRegistered(version));
    }

    function test_register_revertsOnDuplicate() public {
        vm.prank(operator);
        bytes32 version = algorithms.register(MODEL, "highs-1.12.0", PARAMS, "a");
        vm.expectRevert(abi.encodeWithSelector(IAlgorithmRegistry.AlgorithmRegistryDuplicateVersion.selector, version));
        vm.prank(operator);
        algorithms.register(MODEL, "highs-1.12.0", PARAMS, "b");
    }

    function test_register_revertsWithoutRole() public {
        vm.expectRevert(abi.encodeWithSelector(IAlgorithmRegistry.AlgorithmRegistryUnauthorized.selector, stranger));
        vm.prank(stranger);
        algorithms.register(MODEL, "highs-1.12.0", PARAMS, "");
    }

    function test_deprecate_marksAndEmits() public {
        vm.expectEmit(address(algorithms));
        emit IAlgorithmRegistry.AlgorithmDeprecated(algorithmVersion);
        vm.prank(operator);
        algorithms.deprecate(algorithmVersion);
        assertTrue(algorithms.algorithm(algorithmVersion).deprecated);
        assertTrue(algorithms.isRegistered(algorithmVersion));
        assertFalse(algorithms.isUsable(algorithmVersion));
    }

    function test_deprecate_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAlgorithmRegistry.AlgorithmRegistryUnknownVersion.selector, MODEL));
        vm.prank(operator);
        algorithms.deprecate(MODEL);
    }

    function test_deprecate_revertsTwice() public {
        vm.startPrank(operator);
        algorithms.deprecate(algorithmVersion);
        vm.expectRevert(
            abi.encodeWithSelector(IAlgorithmRegistry.AlgorithmRegistryAlreadyDeprecated.selector, algorithmVersion)
        );
        algorithms.deprecate(algorithmVersion);
        vm.stopPrank();
    }

    function test_deprecate_revertsWithoutRole() public {
        vm.expectRevert(abi.encodeWithSelector(IAlgorithmRegistry.AlgorithmRegistryUnauthorized.selector, stranger));
        vm.prank(stranger);
        algorithms.deprecate(algorithmVersion);
    }

    function test_algorithm_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAlgorithmRegistry.AlgorithmRegistryUnknownVersion.selector, MODEL));
        algorithms.algorithm(MODEL);
    }

    function testFuzz_computeVersion_isInjectiveInSolver(string calldata a, string calldata b) public view {
        vm.assume(keccak256(bytes(a)) != keccak256(bytes(b)));
        assertNotEq(algorithms.computeVersion(MODEL, a, PARAMS), algorithms.computeVersion(MODEL, b, PARAMS));
    }
}
